//! Reading a response body from the identity provider or Graph with a size cap: a provider
//! (or whoever answers in its place) must not make the proxy buffer without bound. Real
//! answers are small: a discovery document about 2 KB, Entra's key set about 10 KB, a token
//! answer under 10 KB, a Graph page of 999 group IDs about 60 KB.

/// Discovery and key-set bodies larger than this are refused.
pub const MAX_METADATA: usize = 256 * 1024;
/// Graph pages larger than this are refused.
pub const MAX_GRAPH_PAGE: usize = 1024 * 1024;
/// Token-endpoint answers larger than this are refused (Entra's are under 10 KB).
pub const MAX_TOKEN_ANSWER: usize = 64 * 1024;

/// Why a capped body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the body could not be read")]
    Read(#[source] reqwest::Error),
}

/// The body of `resp`, refused once it passes `max` bytes (by `Content-Length` at once, or
/// as it streams).
pub async fn read(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(BodyError::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The HTTP client for openidconnect's token requests, reading answers with
/// [`MAX_TOKEN_ANSWER`] as the cap (openidconnect's own reqwest client reads any length).
pub struct TokenHttp<'a>(pub &'a reqwest::Client);

type HttpError = openidconnect::HttpClientError<reqwest::Error>;

impl<'c> openidconnect::AsyncHttpClient<'c> for TokenHttp<'_> {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, HttpError>>
                + Send
                + Sync
                + 'c,
        >,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(Box::new)?;
            let response = self.0.execute(request).await.map_err(Box::new)?;
            let mut builder = http::Response::builder()
                .status(response.status())
                .version(response.version());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = match read(response, MAX_TOKEN_ANSWER).await {
                Ok(body) => body,
                Err(BodyError::Read(e)) => return Err(Box::new(e).into()),
                Err(e @ BodyError::TooLarge(_)) => return Err(HttpError::Other(e.to_string())),
            };
            builder.body(body).map_err(HttpError::Http)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves one raw HTTP/1.1 answer of a `len`-byte body on 127.0.0.1, chunked (no
    /// Content-Length, so only the streaming cap can stop it) or with a length.
    async fn serve(len: usize, chunked: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            let body = vec![b'x'; len];
            let head = if chunked {
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()
            } else {
                format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n")
            };
            let _ = tcp.write_all(head.as_bytes()).await;
            if chunked {
                for piece in body.chunks(8192) {
                    let _ = tcp
                        .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                        .await;
                    let _ = tcp.write_all(piece).await;
                    let _ = tcp.write_all(b"\r\n").await;
                }
                let _ = tcp.write_all(b"0\r\n\r\n").await;
            } else {
                let _ = tcp.write_all(&body).await;
            }
        });
        format!("http://{addr}/")
    }

    async fn fetch(len: usize, chunked: bool, max: usize) -> Result<Vec<u8>, BodyError> {
        let url = serve(len, chunked).await;
        let resp = reqwest::Client::new().get(url).send().await.unwrap();
        read(resp, max).await
    }

    #[tokio::test]
    async fn bodies_within_the_cap_are_read_whole() {
        assert_eq!(fetch(1000, false, 1000).await.unwrap().len(), 1000);
        assert_eq!(fetch(50_000, true, 50_000).await.unwrap().len(), 50_000);
    }

    #[tokio::test]
    async fn bodies_past_the_cap_are_refused_by_length_or_as_they_stream() {
        assert!(matches!(
            fetch(1001, false, 1000).await,
            Err(BodyError::TooLarge(1000))
        ));
        assert!(matches!(
            fetch(MAX_METADATA + 1, true, MAX_METADATA).await,
            Err(BodyError::TooLarge(_))
        ));
    }

    #[tokio::test]
    async fn token_answers_past_their_cap_are_refused() {
        use openidconnect::AsyncHttpClient;
        let client = reqwest::Client::new();
        let http = TokenHttp(&client);
        let request = |url: String| http::Request::builder().uri(url).body(Vec::new()).unwrap();
        let small = http.call(request(serve(5000, true).await)).await.unwrap();
        assert_eq!(small.body().len(), 5000);
        let large = http
            .call(request(serve(MAX_TOKEN_ANSWER + 1, true).await))
            .await;
        assert!(
            matches!(&large, Err(openidconnect::HttpClientError::Other(m)) if m.contains("larger")),
            "{large:?}"
        );
    }
}
