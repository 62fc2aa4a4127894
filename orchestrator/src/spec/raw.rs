//! The spec as written: serde structs with `deny_unknown_fields` and kebab-case keys, so
//! serde reports syntax errors, unknown keys and unknown enum values with a line and column.
//! Enums (arches, report kinds, the accelerator) deserialise directly; durations and sizes
//! use the small humane types below.

use crate::console::Kind;
use crate::record::plan::{AccelChoice, Arch};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSpec {
    pub source: RawSource,
    #[serde(default = "default_base_config")]
    pub base_config: String,
    #[serde(default)]
    pub fragments: Vec<String>,
    pub arches: Vec<Arch>,
    pub configs: BTreeMap<String, Vec<String>>,
    pub patchsets: BTreeMap<String, RawPatchset>,
    #[serde(default)]
    pub tests: Vec<RawTest>,
    #[serde(default)]
    pub vm: RawVm,
    #[serde(default)]
    pub jobs: Option<usize>,
    #[serde(default = "default_guest_tests")]
    pub guest_tests: String,
    #[serde(default = "default_kconfigs")]
    pub kconfigs: String,
    /// Test-harness patches applied after a patchset's own patches.
    #[serde(default)]
    pub harness: Vec<RawHarness>,
    /// The patchset findings are compared against ("also in baseline").
    #[serde(default)]
    pub baseline: Option<String>,
    /// Caps on what a guest can make kmatrix store.
    #[serde(default)]
    pub limits: RawLimits,
    /// The kernel's own selftests to run in every cell (`suite/name`); a default set
    /// when absent, none with `[]`.
    #[serde(default)]
    pub selftests: Option<Vec<String>>,
    #[serde(default)]
    pub selftest_timeout: Option<Humane>,
    /// A YAML list of known issues (title pattern, cells, link, why).
    #[serde(default)]
    pub known_issues: Option<String>,
}

/// A patchset: a list of patch files (mboxes, folders with a `series` file), or the
/// commits of a git range, `{ git: <repo>, range: <base>..<tip> }`.
#[derive(Debug, Clone)]
pub enum RawPatchset {
    Files(Vec<String>),
    Git { git: PathBuf, range: String },
}

/// The range's two keys; a struct of its own so serde names an unknown or missing key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    git: PathBuf,
    range: String,
}

impl<'de> Deserialize<'de> for RawPatchset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than an untagged enum, so a wrong shape gets a message that
        // says both shapes, and an error inside the range keeps its own words.
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawPatchset;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a list of patch files, or `{ git: <repository>, range: <base>..<tip> }`",
                )
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                a: A,
            ) -> Result<RawPatchset, A::Error> {
                Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(a))
                    .map(RawPatchset::Files)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                a: A,
            ) -> Result<RawPatchset, A::Error> {
                RawRange::deserialize(serde::de::value::MapAccessDeserializer::new(a)).map(|r| {
                    RawPatchset::Git {
                        git: r.git,
                        range: r.range,
                    }
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawHarness {
    pub patch: String,
    /// Patchsets it applies to; all when absent.
    #[serde(default)]
    pub patchsets: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawExpect {
    pub kind: Kind,
    #[serde(default)]
    pub title: Option<String>,
}

fn default_base_config() -> String {
    "tinyconfig".into()
}
fn default_guest_tests() -> String {
    "guest-tests".into()
}
fn default_kconfigs() -> String {
    "kconfigs".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSource {
    #[serde(default)]
    pub debian_package: Option<String>,
    #[serde(default)]
    pub tarball: Option<String>,
    #[serde(default)]
    pub git: Option<String>,
    /// Revision for `git` (branch, tag or commit); HEAD when absent.
    #[serde(default)]
    pub rev: Option<String>,
    #[serde(default)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawTest {
    pub name: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default = "default_duration")]
    pub duration: Humane,
    #[serde(default = "default_timeout")]
    pub timeout: Humane,
    /// Run only in these patchsets / configs / arches (all when absent).
    #[serde(default)]
    pub patchsets: Option<Vec<String>>,
    #[serde(default)]
    pub configs: Option<Vec<String>>,
    #[serde(default)]
    pub arches: Option<Vec<Arch>>,
    /// Kernel reports this test provokes on purpose (positive controls).
    #[serde(default)]
    pub expect: Vec<RawExpect>,
    /// An out-of-tree kernel module (a folder with a Kbuild file) built against each
    /// cell's kernel and shared with the guest, which the test loads.
    #[serde(default)]
    pub module: Option<String>,
    /// Race amplification while the test runs: `true`, or settings.
    #[serde(default)]
    pub amplify: Option<RawAmplify>,
}

/// `amplify:` on a test: `true` / `false`, or a map of settings. A visitor rather than
/// an untagged enum, so a wrong value is told what was expected and an unknown key in
/// the map is named with its line.
#[derive(Debug)]
pub enum RawAmplify {
    Off,
    On(RawAmplifySettings),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawAmplifySettings {
    /// A delayed call waits a random 0..=delay-us microseconds.
    #[serde(default)]
    pub delay_us: Option<u32>,
    /// The share of calls delayed at all, in percent.
    #[serde(default)]
    pub percent: Option<u32>,
    /// Also a reschedule after each delay (default true).
    #[serde(default)]
    pub preempt: Option<bool>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// Functions to delay besides those the cell's series changes.
    #[serde(default)]
    pub functions: Vec<String>,
    /// Lock operations to delay when called inside them, besides those found.
    #[serde(default)]
    pub lock_ops: Vec<String>,
    /// The cells it is on in (all the test runs in when absent).
    #[serde(default)]
    pub configs: Option<Vec<String>>,
    #[serde(default)]
    pub patchsets: Option<Vec<String>>,
    #[serde(default)]
    pub arches: Option<Vec<Arch>>,
}

impl<'de> Deserialize<'de> for RawAmplify {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawAmplify;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`true`, `false` or settings like `{ delay-us: 100 }`")
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawAmplify, E> {
                Ok(if v {
                    RawAmplify::On(RawAmplifySettings::default())
                } else {
                    RawAmplify::Off
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<RawAmplify, A::Error> {
                RawAmplifySettings::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(RawAmplify::On)
            }
        }
        d.deserialize_any(V)
    }
}
fn default_duration() -> Humane {
    Humane(Duration::from_secs(20), "20s".into())
}
fn default_timeout() -> Humane {
    Humane(Duration::from_secs(300), "5m".into())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawVm {
    #[serde(default)]
    pub accel: AccelChoice,
    pub memory: Option<Size>,
    pub cpus: Option<u32>,
    /// NUMA nodes the guest gets (memory split evenly, CPUs dealt round-robin).
    pub numa_nodes: Option<u32>,
    pub boot_timeout: Option<Humane>,
    pub hung_task_timeout: Option<Humane>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLimits {
    /// Console bytes kept per cell (all boots together).
    pub console: Option<Size>,
    /// Output bytes kept per guest test.
    pub test_output: Option<Size>,
    /// Bytes the guest may write into its results share per cell.
    pub results: Option<Size>,
}

/// A duration as written (`90s`, `5m`, `1m30s`, `1h`, or plain seconds), and its text for
/// messages.
#[derive(Debug, Clone)]
pub struct Humane(pub Duration, pub String);

impl<'de> Deserialize<'de> for Humane {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = NumberOrText::deserialize(d)?.text();
        parse_duration(&text)
            .map(|v| Humane(v, text))
            .map_err(serde::de::Error::custom)
    }
}

/// A size as written (`1G`, `768M`, `64K`, plain bytes for limits / MiB for memory is the
/// caller's business): kept in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = NumberOrText::deserialize(d)?.text();
        parse_size(&text)
            .map(Size)
            .map_err(serde::de::Error::custom)
    }
}

/// A scalar written as a number or as text (`timeout: 90` or `timeout: 90s`), as text.
/// A visitor rather than an untagged enum, so a wrong value gets a message that says what
/// was expected.
struct NumberOrText(String);

impl<'de> Deserialize<'de> for NumberOrText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = NumberOrText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or a text like `30s` or `1G`")
            }
            fn visit_u64<E>(self, v: u64) -> Result<NumberOrText, E> {
                Ok(NumberOrText(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<NumberOrText, E> {
                Ok(NumberOrText(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl NumberOrText {
    fn text(self) -> String {
        self.0
    }
}

/// Parse a humane duration: anything `humantime` reads (`90s`, `5m`, `1m30s`, `1h`), or
/// plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    humantime::parse_duration(s).map_err(|_| format!("`{s}` is not a duration (try `30s`, `5m`)"))
}

/// Parse a size such as `1G`, `512M`, `64K` or plain bytes into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, shift) = match s.chars().last() {
        Some('G' | 'g') => (&s[..s.len() - 1], 30),
        Some('M' | 'm') => (&s[..s.len() - 1], 20),
        Some('K' | 'k') => (&s[..s.len() - 1], 10),
        _ => (s, 0),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("`{s}` is not a size (try `1G` or `768M`)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("768M").unwrap(), 768 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999G").is_err(), "overflow");
    }
}
