//! kmatrix: build patched kernels across a config matrix, boot each in QEMU, stress the
//! VMA locking paths from the guest and report what the kernel said.

pub mod amplify;
pub mod bisect;
pub mod build;
pub mod cache;
pub mod cli;
pub mod compare;
pub mod console;
pub mod coverage;
pub mod doctor;
pub mod engine;
pub mod events;
pub mod guest;
pub mod identity;
pub mod image;
pub mod kconfig;
pub mod known;
pub mod ktap;
pub mod kvm_verdict;
pub mod lockgraph;
pub mod plan;
pub mod proc;
pub mod report;
pub mod sanitize;
pub mod selftests;
pub mod series;
pub mod source;
pub mod spec;
pub mod verdict;
pub mod vm;
