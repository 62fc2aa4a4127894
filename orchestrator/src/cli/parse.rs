//! `kmatrix parse LOG`: the kernel reports in a console log.

use crate::cli::error::CliError;
use crate::record::verdict::exit;
use std::path::Path;

pub fn parse(
    log: &Path,
    json: bool,
    vmlinux: Option<&Path>,
    tool_prefix: &str,
) -> Result<i32, CliError> {
    let f = std::fs::File::open(log).map_err(|source| CliError::Io {
        path: log.to_owned(),
        source,
    })?;
    let mut findings =
        crate::console::parse(std::io::BufReader::new(f)).map_err(|source| CliError::Io {
            path: log.to_owned(),
            source,
        })?;
    if let Some(v) = vmlinux {
        if let Err(e) = crate::console::symbolize(&mut findings, v, tool_prefix) {
            eprintln!("kmatrix: cannot symbolise with {}: {e}", v.display());
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&crate::console::findings_json(&findings))
                .unwrap_or_default()
        );
    } else {
        for f in &findings {
            println!("{}: {} [{:?}]", f.line, f.title, f.kind);
        }
        if findings.is_empty() {
            println!("no kernel reports");
        }
    }
    Ok(exit::PASS)
}
