//! Parsers of what the guest and the kernel build hand back (besides the console, which
//! has its own folder): KTAP, `.config`.

pub mod kconfig;
pub mod ktap;
pub mod vmstat;
