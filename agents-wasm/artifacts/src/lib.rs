//! Paths of the guest components built for wasm32-wasip2 by this crate's
//! build script: the bundled agents and the hostile test fixture.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
