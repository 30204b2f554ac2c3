//! Build script: generates the gRPC code of every `.proto` file under
//! `proto/account_ledger/v1/` with tonic-build, using the protoc shipped in the
//! `protoc-bin-vendored` crate (nothing installed by hand), and writes a file descriptor set for
//! server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };

    let dir = PathBuf::from("proto/account_ledger/v1");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut protos: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    protos.sort();
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let wkt_include = protoc_bin_vendored::include_path()?;
    tonic_build::configure()
        .build_client(true)
        .build_server(true)
        // Undecodable requests are INVALID_ARGUMENT, not INTERNAL (src/api/codec.rs).
        .codec_path("crate::api::codec::StrictProstCodec")
        .file_descriptor_set_path(out_dir.join("account_ledger_descriptor.bin"))
        .compile_protos(&protos, &[PathBuf::from("proto"), wkt_include])?;
    Ok(())
}
