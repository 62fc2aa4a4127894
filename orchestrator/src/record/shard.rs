// One part of a sharded matrix. Plain `//` comments and no imports: `build.rs` includes
// this file into the command line's definitions (`cli/args.rs`) to write man pages.

/// One part of a sharded matrix: shard `k` of `n` (1-based), written `k/n` on the
/// command line and in results.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

impl Shard {
    /// More shards than this is a typo (one cell per shard is already the most useful).
    pub const MAX: u32 = 4096;

    pub fn parse(s: &str) -> Result<Shard, String> {
        let (k, n) = s.split_once('/').ok_or("use K/N, e.g. 1/2")?;
        let number = |what: &str| {
            format!(
                "shard `{s}`: {what} must be a number from 1 to {}",
                Shard::MAX
            )
        };
        let k: u32 = k.trim().parse().map_err(|_| number("K"))?;
        let n: u32 = n.trim().parse().map_err(|_| number("N"))?;
        if n == 0 || k == 0 || k > n {
            return Err(format!("shard {k}/{n}: need 1 <= K <= N"));
        }
        if n > Shard::MAX {
            return Err(format!("shard {k}/{n}: at most {} shards", Shard::MAX));
        }
        Ok(Shard { k, n })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}
