//! A tiny OCI image written by hand, so no network is needed: one gzipped tar layer holding
//! one file, an image config, a manifest, `index.json` and `oci-layout`.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// An OCI image layout on disk, tagged `latest`.
pub struct OciImage {
    dir: TempDir,
}

impl OciImage {
    /// Writes an image whose one layer holds `hello.txt` with `content`.
    pub fn write(content: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();

        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, "hello.txt", content.as_bytes())
            .unwrap();
        let tar = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        let layer = gz.finish().unwrap();

        let layer_digest = store(&blobs, &layer);
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [sha256(&tar)] },
        })
        .to_string();
        let config_digest = store(&blobs, config.as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": layer.len(),
            }],
        })
        .to_string();
        let manifest_digest = store(&blobs, manifest.as_bytes());
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest.len(),
                "annotations": { "org.opencontainers.image.ref.name": "latest" },
            }],
        });
        std::fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        OciImage { dir }
    }

    /// The `oci:DIR:latest` reference skopeo reads.
    pub fn reference(&self) -> String {
        format!("oci:{}:latest", self.dir.path().display())
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        data_encoding::HEXLOWER.encode(&Sha256::digest(bytes))
    )
}

fn store(blobs: &Path, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
    digest
}
