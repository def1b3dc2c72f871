//! Deployment size of each function: the stripped release binary, and the zip Lambda is
//! given (the binary named `bootstrap`, compressed as `cargo lambda build --output-format
//! zip` does).

use std::path::Path;

/// One function's sizes, in bytes.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Size {
    /// The binary.
    pub binary: u64,
    /// The zip holding it as `bootstrap`.
    pub zipped: u64,
    /// Whether the binary carries no symbol table.
    pub stripped: bool,
}

/// Sizes of `binary`, zipping it under `work`.
pub fn measure(binary: &Path, work: &Path) -> Result<Size, String> {
    let name = binary.file_name().and_then(|n| n.to_str()).ok_or("binary name")?;
    let dir = work.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let bootstrap = dir.join("bootstrap");
    std::fs::copy(binary, &bootstrap).map_err(|e| format!("{}: {e}", binary.display()))?;
    let zip = dir.join("package.zip");
    let status = std::process::Command::new("zip")
        .args(["-q", "-9", "-X", "-j"])
        .arg(&zip)
        .arg(&bootstrap)
        .status()
        .map_err(|e| format!("zip: {e} (install the zip package)"))?;
    if !status.success() {
        return Err(format!("zip failed for {name}"));
    }
    let stripped = std::process::Command::new("nm")
        .arg(binary)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).contains("no symbols"))
        .unwrap_or(false);
    Ok(Size {
        binary: std::fs::metadata(binary).map_err(|e| e.to_string())?.len(),
        zipped: std::fs::metadata(&zip).map_err(|e| e.to_string())?.len(),
        stripped,
    })
}
