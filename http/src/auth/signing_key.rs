//! The token-signing secret: configured, or (embedded mode only) generated
//! once and kept in the data directory so tokens survive restarts.

use std::io::Write;
use std::path::Path;

use base64::Engine;

/// Shortest secret accepted, in bytes.
pub const SECRET_MIN: usize = 32;

/// Why there is no signing secret to start with.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("TENET_JWT_SECRET must be at least {SECRET_MIN} bytes")]
    TooShort,
    #[error(
        "TENET_JWT_SECRET is required with DATABASE_URL: every instance must sign with the same secret"
    )]
    Required,
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is not a secret this service wrote")]
    Foreign(String),
}

pub fn jwt_secret(
    configured: Option<&str>,
    embedded: bool,
    data_dir: &Path,
) -> Result<Vec<u8>, SigningKeyError> {
    if let Some(secret) = configured {
        if secret.len() < SECRET_MIN {
            return Err(SigningKeyError::TooShort);
        }
        return Ok(secret.as_bytes().to_vec());
    }
    if !embedded {
        return Err(SigningKeyError::Required);
    }
    let io = |action: &'static str, path: &Path| {
        let path = path.display().to_string();
        move |source| SigningKeyError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(data_dir).map_err(io("create the data directory", data_dir))?;
    let path = data_dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(text) => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| SigningKeyError::Foreign(path.display().to_string())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secret: [u8; 32] = rand::random();
            write_private(
                &path,
                &base64::engine::general_purpose::STANDARD.encode(secret),
            )
            .map_err(io("write", &path))?;
            Ok(secret.to_vec())
        }
        Err(error) => Err(io("read", &path)(error)),
    }
}

/// Creates a file readable by its owner only.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_secret_is_generated_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = jwt_secret(None, true, dir.path()).unwrap();
        let second = jwt_secret(None, true, dir.path()).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(first, second);
    }

    #[test]
    fn distributed_mode_needs_a_long_enough_secret() {
        let dir = tempfile::tempdir().unwrap();
        assert!(jwt_secret(None, false, dir.path()).is_err());
        assert!(jwt_secret(Some("short"), false, dir.path()).is_err());
        assert!(jwt_secret(Some(&"s".repeat(32)), false, dir.path()).is_ok());
    }
}
