//! kmatrix: build patched kernels across a config matrix, boot each in QEMU, stress the
//! VMA locking paths from the guest and report what the kernel said.
//!
//! The modules are layers; each imports only from the layers listed before it
//! (`tests/layers.rs` fails on an upward import). ARCHITECTURE.md draws them.

pub mod record;

pub mod console;
pub mod parse;

pub mod host;

pub mod spec;

pub mod prepare;

pub mod vm;

pub mod judge;

pub mod engine;

pub mod report;

pub mod cli;
