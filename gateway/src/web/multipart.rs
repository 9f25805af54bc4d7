//! `multipart/related` bodies (RFC 2387) as WADO-RS answers them: written part by
//! part into a streamed response, so a study of any size is sent with a few buffers
//! of memory. The boundary is random; each part carries its own `Content-Type` (and
//! `Content-Location` where useful).

use std::io;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use rand_core::RngCore as _;
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;

/// Bytes read from a file per chunk of the body.
const CHUNK: usize = 256 * 1024;

/// The writing end of a streamed `multipart/related` response.
#[derive(Debug)]
pub struct Parts {
    boundary: String,
    tx: Sender,
    first: bool,
}

/// The sending end of a streamed body.
pub type Sender = mpsc::Sender<Result<Bytes, io::Error>>;

/// A 200 response whose body is what is sent on the returned channel (a few chunks
/// buffered: the producer waits for the client). The body ends when the sender is
/// dropped; an `Err` sent ends it abnormally.
pub fn streamed() -> (Sender, Response) {
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    (tx, response)
}

/// A streamed `multipart/related; type="<part_type>"` response (status 200) and the
/// [`Parts`] that fill it. The response ends when `Parts` is finished or dropped.
pub fn response(part_type: &str) -> (Parts, Response) {
    let mut random = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut random);
    let boundary = format!("pacs-{}", hex::encode(random));
    let (tx, mut response) = streamed();
    let content_type = format!("multipart/related; type=\"{part_type}\"; boundary={boundary}");
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    (
        Parts {
            boundary,
            tx,
            first: true,
        },
        response,
    )
}

impl Parts {
    fn head(&mut self, headers: &[(&str, &str)]) -> Bytes {
        let mut head = String::new();
        if !self.first {
            head.push_str("\r\n");
        }
        self.first = false;
        head.push_str("--");
        head.push_str(&self.boundary);
        head.push_str("\r\n");
        for (name, value) in headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        Bytes::from(head)
    }

    /// Sends one part; `false` when the client has gone.
    pub async fn part(&mut self, headers: &[(&str, &str)], body: Bytes) -> bool {
        let head = self.head(headers);
        self.tx.send(Ok(head)).await.is_ok() && self.tx.send(Ok(body)).await.is_ok()
    }

    /// Sends one part whose body is `head` followed by the rest of `file` from its
    /// current position, in chunks; `false` when the client has gone. A read error in
    /// the middle ends the response abnormally (the client sees a broken body, never a
    /// silently short part).
    pub async fn part_from_file(
        &mut self,
        headers: &[(&str, &str)],
        head: Bytes,
        mut file: impl tokio::io::AsyncRead + Unpin,
    ) -> bool {
        let part_head = self.head(headers);
        if self.tx.send(Ok(part_head)).await.is_err() {
            return false;
        }
        if !head.is_empty() && self.tx.send(Ok(head)).await.is_err() {
            return false;
        }
        loop {
            let mut buf = vec![0u8; CHUNK];
            match file.read(&mut buf).await {
                Ok(0) => return true,
                Ok(n) => {
                    buf.truncate(n);
                    if self.tx.send(Ok(Bytes::from(buf))).await.is_err() {
                        return false;
                    }
                }
                Err(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return false;
                }
            }
        }
    }

    /// Writes the closing boundary (an empty answer is just the closing boundary).
    pub async fn finish(mut self) {
        let close = if self.first {
            format!("--{}--\r\n", self.boundary)
        } else {
            format!("\r\n--{}--\r\n", self.boundary)
        };
        self.first = false;
        let _ = self.tx.send(Ok(Bytes::from(close))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parts_are_framed_by_the_boundary() {
        let (mut parts, response) = response("application/dicom");
        let ct = response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let boundary = ct.split("boundary=").nth(1).unwrap().to_string();
        tokio::spawn(async move {
            assert!(
                parts
                    .part(&[("Content-Type", "application/dicom")], Bytes::from("one"))
                    .await
            );
            let file: &[u8] = b"-three";
            assert!(
                parts
                    .part_from_file(&[("Content-Type", "x/y")], Bytes::from("two"), file)
                    .await
            );
            parts.finish().await;
        });
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let expected = format!(
            "--{b}\r\nContent-Type: application/dicom\r\n\r\none\r\n--{b}\r\nContent-Type: x/y\r\n\r\ntwo-three\r\n--{b}--\r\n",
            b = boundary
        );
        assert_eq!(String::from_utf8(body.to_vec()).unwrap(), expected);
        assert!(ct.starts_with("multipart/related; type=\"application/dicom\"; boundary=pacs-"));
    }
}
