//! Helpers for the tests that drive the real `gatehouse` binary: the process, and a
//! deployment (PKI, certificate files, config) to run it on. Compiled into each of those
//! test crates, because only there does cargo say where it built the binary; each crate
//! uses some of them.
#![allow(dead_code)]

pub mod chores;
pub mod clients;
pub mod console;
pub mod deploy;
pub mod openssl;
pub mod probes;
pub mod process;
pub mod tools;
