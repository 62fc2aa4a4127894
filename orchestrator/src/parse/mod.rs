//! Parsers of what the guest and the kernel build hand back (besides the console, which
//! has its own folder): KTAP, `.config`, /proc/vmstat, the lock and task dumps of a hang.

pub mod kconfig;
pub mod ktap;
pub mod lockdump;
pub mod vmstat;
