//! Hand-written PDUs on a bare TCP socket, for peers that break the rules in ways our
//! well-behaved requestor cannot (a PDU over the negotiated maximum, garbage instead of
//! an A-ASSOCIATE-RQ). Layouts follow PS3.8 9.3.

use std::io::ErrorKind;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// PDU type of A-ASSOCIATE-AC.
pub const ASSOCIATE_AC: u8 = 0x02;
/// PDU type of A-ABORT.
pub const ABORT: u8 = 0x07;

fn item(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.extend_from_slice(&[kind, 0]);
    out.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    out.extend_from_slice(value);
}

fn ae(title: &str) -> [u8; 16] {
    let mut out = [b' '; 16];
    out[..title.len()].copy_from_slice(title.as_bytes());
    out
}

/// A-ASSOCIATE-RQ (PS3.8 9.3.2) with one presentation context (id 1) and a maximum
/// length of `max_pdu`.
pub fn associate_rq(
    calling: &str,
    called: &str,
    abstract_syntax: &str,
    transfer_syntax: &str,
    max_pdu: u32,
) -> Vec<u8> {
    let mut body = vec![0, 1, 0, 0];
    body.extend_from_slice(&ae(called));
    body.extend_from_slice(&ae(calling));
    body.extend_from_slice(&[0; 32]);
    item(
        &mut body,
        0x10,
        dimse::assoc::APPLICATION_CONTEXT.as_bytes(),
    );
    let mut context = vec![1, 0, 0, 0];
    item(&mut context, 0x30, abstract_syntax.as_bytes());
    item(&mut context, 0x40, transfer_syntax.as_bytes());
    item(&mut body, 0x20, &context);
    let mut user = Vec::new();
    item(&mut user, 0x51, &max_pdu.to_be_bytes());
    item(
        &mut user,
        0x52,
        dimse::assoc::IMPLEMENTATION_CLASS_UID.as_bytes(),
    );
    item(&mut body, 0x50, &user);
    let mut pdu = vec![0x01, 0];
    pdu.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    pdu.extend_from_slice(&body);
    pdu
}

/// Reads one whole PDU: its type and its variable part.
pub async fn read_pdu(stream: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 6];
    stream.read_exact(&mut header).await?;
    let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
    assert!(len <= 1 << 20, "PDU of {len} bytes from the gateway");
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await?;
    Ok((header[0], body))
}

/// Connects and associates with one context; panics unless the A-ASSOCIATE-AC accepts
/// presentation context 1.
pub async fn associate(
    port: u16,
    calling: &str,
    called: &str,
    abstract_syntax: &str,
    transfer_syntax: &str,
) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let rq = associate_rq(calling, called, abstract_syntax, transfer_syntax, 16384);
    stream.write_all(&rq).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(10), read_pdu(&mut stream));
    let (kind, body) = read.await.expect("A-ASSOCIATE-AC in time").unwrap();
    assert_eq!(
        kind, ASSOCIATE_AC,
        "expected A-ASSOCIATE-AC, got {body:02x?}"
    );
    assert!(
        context_accepted(&body, 1),
        "presentation context 1 not accepted"
    );
    stream
}

/// Whether the variable part of an A-ASSOCIATE-AC accepts presentation context `id`.
fn context_accepted(ac: &[u8], id: u8) -> bool {
    let mut at = 68;
    while at + 4 <= ac.len() {
        let len = usize::from(u16::from_be_bytes([ac[at + 2], ac[at + 3]]));
        let value = &ac[at + 4..(at + 4 + len).min(ac.len())];
        if ac[at] == 0x21 && value.len() >= 3 && value[0] == id {
            return value[2] == 0;
        }
        at += 4 + len;
    }
    false
}

/// Writes a P-DATA-TF PDU with one PDV (PS3.8 9.3.5), whatever its size.
pub async fn write_pdv(
    stream: &mut TcpStream,
    context: u8,
    command: bool,
    last: bool,
    data: &[u8],
) -> std::io::Result<()> {
    let item_len = u32::try_from(data.len() + 2).unwrap();
    let mut header = vec![0x04, 0];
    header.extend_from_slice(&(item_len + 4).to_be_bytes());
    header.extend_from_slice(&item_len.to_be_bytes());
    header.push(context);
    header.push(u8::from(command) | (u8::from(last) << 1));
    stream.write_all(&header).await?;
    stream.write_all(data).await?;
    stream.flush().await
}

/// How the gateway ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// An A-ABORT PDU, then the connection closed.
    Abort,
    /// The connection closed without a PDU.
    Eof,
    /// The connection was reset (the gateway closed with our bytes unread).
    Reset,
}

/// Waits for the gateway to end the connection: an A-ABORT and/or EOF (or reset).
/// Panics if it sends anything else or keeps the connection open past `within`.
pub async fn wait_for_close(stream: &mut TcpStream, within: Duration) -> Ending {
    let ending = async {
        let mut first = [0u8; 1];
        let ending = match stream.read(&mut first).await {
            Ok(0) => return Ending::Eof,
            Ok(_) if first[0] == ABORT => Ending::Abort,
            Ok(_) => panic!(
                "expected A-ABORT or end of connection, got a PDU of type {:#04x}",
                first[0]
            ),
            Err(e) if is_reset(&e) => return Ending::Reset,
            Err(e) => panic!("reading from the gateway failed: {e}"),
        };
        let mut rest = [0u8; 512];
        loop {
            match stream.read(&mut rest).await {
                Ok(0) => return ending,
                Ok(_) => {}
                Err(e) if is_reset(&e) => return ending,
                Err(e) => panic!("reading from the gateway failed: {e}"),
            }
        }
    };
    tokio::time::timeout(within, ending)
        .await
        .unwrap_or_else(|_| panic!("the gateway kept the connection open for {within:?}"))
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}
