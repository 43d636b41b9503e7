//! The library half of the `mcp` binary: the demo and training data,
//! shared by the binary's commands and the tests.

pub mod demo;
pub mod training;
