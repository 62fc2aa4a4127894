//! The host's side of everything: spawning processes, the cache, SSH to a guest, the
//! results share made safe, whether KVM works here.

pub mod cache;
pub mod guest;
pub mod kvm_verdict;
pub mod proc;
pub mod quota;
pub mod rundir;
pub mod runfile;
pub mod sandbox;
pub mod sanitize;
