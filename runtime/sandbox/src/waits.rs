//! No waiting inside a call. An epoch deadline fires only while wasm runs,
//! not while a host call blocks, so a guest that sleeps (`wasi:clocks`
//! monotonic-clock subscriptions polled through `wasi:io/poll`) would hold
//! its call, its thread and its instance slot past every deadline. The
//! clock subscriptions are replaced by ones that end the call with the
//! `wait` fault; reading the clocks stays allowed.

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::DynPollable;

use crate::host::HostState;

/// The WASI version whose interfaces wasmtime-wasi links; a guest built
/// against any 0.2.x is matched to it by semver.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Why a call ended: the guest asked to wait.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tried to wait ({0}); a call in the sandbox may not sleep or wait on a clock")]
pub struct WaitDenied(pub &'static str);

/// Shadows the clock subscriptions that `wasmtime_wasi` linked.
pub fn deny_waits(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |_store, (_nanos,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
            Err(wasmtime::Error::new(WaitDenied("subscribe-duration")))
        },
    )?;
    clock.func_wrap("subscribe-instant", |_store, (_when,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
        Err(wasmtime::Error::new(WaitDenied("subscribe-instant")))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}
