//! Preparation of a cell: the kernel tree, the series, the build, the guest image, the
//! kernel's selftests, the modules kmatrix ships, and the cell's input identity.

pub mod amplify;
pub mod build;
pub mod coverage;
pub mod identity;
pub mod image;
pub mod modules;
pub mod selftests;
pub mod series;
pub mod source;
