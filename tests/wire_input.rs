//! Hostile bytes at the gRPC edge: a request body that does not decode is INVALID_ARGUMENT for
//! every method (never INTERNAL, which would blame the server), and random bodies never get
//! INTERNAL or UNKNOWN, whatever they decode to. Real server, real HTTP/2 client.

mod common;

use bytes::{Buf, BufMut};
use common::*;
use proptest::prelude::*;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Every method of both services, as (path, streaming request).
const METHODS: &[(&str, bool)] = &[
    ("/account_ledger.v1.ImportService/UploadImport", true),
    ("/account_ledger.v1.ImportService/GetImportJob", false),
    (
        "/account_ledger.v1.ImportService/StreamImportRowErrors",
        false,
    ),
    (
        "/account_ledger.v1.ImportService/StreamImportChanges",
        false,
    ),
    ("/account_ledger.v1.ImportService/ListImportJobs", false),
    ("/account_ledger.v1.AccountLedger/RegisterDomain", false),
    ("/account_ledger.v1.AccountLedger/SetLicenseLimit", false),
    ("/account_ledger.v1.AccountLedger/SetMassChangeGuard", false),
    ("/account_ledger.v1.AccountLedger/CreateToken", false),
    ("/account_ledger.v1.AccountLedger/CreateAccount", false),
    ("/account_ledger.v1.AccountLedger/UpdateProfile", false),
    ("/account_ledger.v1.AccountLedger/DisableAccount", false),
    ("/account_ledger.v1.AccountLedger/EnableAccount", false),
    ("/account_ledger.v1.AccountLedger/DeactivateAccount", false),
    ("/account_ledger.v1.AccountLedger/ReactivateAccount", false),
    ("/account_ledger.v1.AccountLedger/DeleteAccount", false),
    ("/account_ledger.v1.AccountLedger/RecordSignIn", false),
    ("/account_ledger.v1.AccountLedger/RecordDataOwned", false),
    ("/account_ledger.v1.AccountLedger/CanSignIn", false),
    ("/account_ledger.v1.AccountLedger/GetAccount", false),
    ("/account_ledger.v1.AccountLedger/ListAccounts", false),
    ("/account_ledger.v1.AccountLedger/GetLicenseUsage", false),
    ("/account_ledger.v1.AccountLedger/ExportUsers", false),
    ("/account_ledger.v1.AccountLedger/GetAccountHistory", false),
    (
        "/account_ledger.v1.AccountLedger/GetImportJobHistory",
        false,
    ),
    ("/account_ledger.v1.AccountLedger/ReadLog", false),
    ("/account_ledger.v1.AccountLedger/Subscribe", false),
    ("/account_ledger.v1.AccountLedger/RebuildProjections", false),
    ("/account_ledger.v1.AccountLedger/VerifyProjections", false),
];

/// Sends raw bytes as the message; ignores what comes back.
#[derive(Default)]
struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        buf.advance(buf.remaining());
        Ok(Some(()))
    }
}

/// Call `path` with `body`; the gRPC code of the answer (Ok for a success or a first streamed
/// message).
async fn call(
    addr: std::net::SocketAddr,
    path: &'static str,
    streaming: bool,
    body: Vec<u8>,
) -> Code {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(path);
    let result = if streaming {
        let request = req(ADMIN_D1, tokio_stream::iter(vec![body]));
        grpc.client_streaming(request, path, RawCodec)
            .await
            .map(|_| ())
    } else {
        let request = req(ADMIN_D1, body);
        match grpc.server_streaming(request, path, RawCodec).await {
            Ok(resp) => {
                let mut stream = resp.into_inner();
                stream.message().await.map(|_| ())
            }
            Err(s) => Err(s),
        }
    };
    match result {
        Ok(()) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test]
async fn an_undecodable_request_is_invalid_argument_for_every_method() {
    let (server, _c) = start_with_domains(&[("d1", 10)]).await;
    // Bodies no message decodes (even an empty message must skip over its fields): a
    // truncated varint, and a length-delimited field longer than the body.
    for body in [vec![0x08, 0xFF], vec![0x0A, 0x10, 0x01]] {
        for (path, streaming) in METHODS {
            let code = call(server.addr, path, *streaming, body.clone()).await;
            assert_eq!(code, Code::InvalidArgument, "{path} with {body:02x?}");
        }
    }
    server.stop().await;
}

/// The Peer service (served when servers share a PostgreSQL store) refuses a caller without
/// the store's secret before it reads the body: an undecodable body is UNAUTHENTICATED, not
/// INVALID_ARGUMENT, so a stranger cannot make the server take in a large message.
#[tokio::test]
async fn a_peer_call_without_the_secret_is_refused_before_its_body_is_read() {
    let (server, _c) = start_with_domains(&[("d1", 10)]).await;
    let code = call(
        server.addr,
        "/account_ledger.v1.Peer/Execute",
        false,
        vec![0x0A, 0x10, 0x01],
    )
    .await;
    let expected = match Backend::from_env() {
        Backend::Postgres => Code::Unauthenticated,
        Backend::Sled => Code::Unimplemented, // one server: no Peer service at all
    };
    assert_eq!(code, expected);
    server.stop().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random request bodies, for every method: never INTERNAL or UNKNOWN.
    #[test]
    fn random_request_bodies_never_answer_internal(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), METHODS.len())
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (server, _c) = start_with_domains(&[("d1", 10)]).await;
            for ((path, streaming), body) in METHODS.iter().zip(bodies) {
                let code = call(server.addr, path, *streaming, body.clone()).await;
                prop_assert!(
                    code != Code::Internal && code != Code::Unknown,
                    "{} with {:02x?}: {:?}", path, body, code
                );
            }
            server.stop().await;
            Ok(())
        })?;
    }
}
