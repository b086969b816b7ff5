//! Compiles `proto/` with protox (a pure-Rust protobuf compiler), so no system `protoc` is needed.
//!
//! Every `.proto` file under `proto/ketenpoort/v1/` is compiled; adding a file needs no change here.
//! The encoded descriptor set is written to `OUT_DIR` for server reflection, because
//! `compile_fds` does not write one.
//! `proto/ketenpoort/bench/v1/` (the echo baseline of `ketenpoort bench`) is compiled separately, so
//! it never enters that descriptor set.
//!
//! The servers decode requests with `crate::grpc::codec::RequestCodec`, which answers a message that
//! does not decode with INVALID_ARGUMENT (tonic's own codec says INTERNAL); the clients keep
//! tonic's codec, for which a response that does not decode is the server's fault.

use std::path::{Path, PathBuf};

/// Generates each service's client with tonic's codec and its server with ours.
struct ClientAndServer {
    client: Box<dyn prost_build::ServiceGenerator>,
    server: Box<dyn prost_build::ServiceGenerator>,
}

impl prost_build::ServiceGenerator for ClientAndServer {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        self.client.generate(service.clone(), buf);
        self.server.generate(service, buf);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=build.rs");

    let package_dir = Path::new("proto/ketenpoort/v1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(package_dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let relative: Vec<PathBuf> = files
        .iter()
        .map(|p| p.strip_prefix("proto").map(Path::to_path_buf))
        .collect::<Result<_, _>>()?;

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(relative)?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("ketenpoort_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    let mut config = prost_build::Config::new();
    config.service_generator(Box::new(ClientAndServer {
        client: tonic_prost_build::configure()
            .build_client(true)
            .build_server(false)
            .service_generator(),
        server: tonic_prost_build::configure()
            .build_client(false)
            .build_server(true)
            .codec_path("crate::grpc::codec::RequestCodec")
            .service_generator(),
    }));
    config.compile_fds(compiler.file_descriptor_set())?;

    let mut bench = protox::Compiler::new(["proto"])?;
    bench.open_files(["ketenpoort/bench/v1/echo.proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(bench.file_descriptor_set())?;
    Ok(())
}
