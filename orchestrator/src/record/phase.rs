//! The phases of a cell, in the order they run.

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Source,
    Patch,
    Build,
    Image,
    Boot,
    Test,
    Collect,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Source => "source",
            Phase::Patch => "patch",
            Phase::Build => "build",
            Phase::Image => "image",
            Phase::Boot => "boot",
            Phase::Test => "test",
            Phase::Collect => "collect",
        }
    }
}
