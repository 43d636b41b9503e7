//! The library half of the `mcp` binary: the demo, training data and
//! benchmark samples, shared by the binary's commands and the tests.

pub mod demo;
pub mod samples;
pub mod training;
