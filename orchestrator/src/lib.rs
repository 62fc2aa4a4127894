//! kmatrix: build patched kernels across a config matrix, boot each in QEMU, stress the
//! VMA locking paths from the guest and report what the kernel said.

pub mod console;
