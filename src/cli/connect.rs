//! One way for every client subcommand to reach the server: the channel (plain or TLS) and the
//! bearer token.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use super::Conn;

/// The server URL as given, with `http://` (or `https://` when a CA is given) added to a bare
/// `host:port`.
fn url(conn: &Conn) -> String {
    if conn.server.contains("://") {
        conn.server.clone()
    } else if conn.tls_ca.is_some() {
        format!("https://{}", conn.server)
    } else {
        format!("http://{}", conn.server)
    }
}

fn read(flag: &str, path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

/// A connected channel; TLS when the URL is `https://`.
pub async fn channel(conn: &Conn) -> Result<Channel, String> {
    let url = url(conn);
    let mut endpoint =
        Channel::from_shared(url.clone()).map_err(|e| format!("--server {url:?}: {e}"))?;
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        match &conn.tls_ca {
            Some(ca) => tls = tls.ca_certificate(Certificate::from_pem(read("--tls-ca", ca)?)),
            None => {
                return Err(
                    "an https:// server needs --tls-ca (the CA certificate that signed the \
                     server's certificate)"
                        .into(),
                );
            }
        }
        match (&conn.tls_client_cert, &conn.tls_client_key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(
                    read("--tls-client-cert", cert)?,
                    read("--tls-client-key", key)?,
                ));
            }
            (None, None) => {}
            _ => return Err("--tls-client-cert and --tls-client-key go together".into()),
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("TLS settings: {e}"))?;
    }
    endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))
}

/// The `authorization` header value, when a token is given.
pub fn bearer(conn: &Conn) -> Result<Option<MetadataValue<Ascii>>, String> {
    match &conn.token {
        Some(t) => format!("Bearer {}", t.trim())
            .parse()
            .map(Some)
            .map_err(|_| "--token contains characters not allowed in a header".to_string()),
        None => Ok(None),
    }
}

/// A request carrying the bearer token, when there is one.
pub fn authorized<T>(auth: &Option<MetadataValue<Ascii>>, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(a) = auth {
        r.metadata_mut().insert("authorization", a.clone());
    }
    r
}
