//! What a client that holds connections open gets: its share and no more. Idle and slow
//! connections are closed, connections past an address's share refused with 503, slow bodies answered 408, and bodies past the shared memory budget
//! refused with 503, while everyone else is still served. Raw sockets, so nothing in between
//! completes or times out a request on the client's behalf.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestServer;

/// Long enough for any answer the server owes on this machine; the limits under test are
/// a second or two.
const PATIENCE: Duration = Duration::from_secs(15);

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.server.addr).await.unwrap()
}

/// Everything the server sends until it closes the connection.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("the server closed the connection in time")
        .unwrap_or_default();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends a complete `GET /healthz` and returns the status line's code.
async fn health_status(stream: &mut TcpStream) -> Option<u16> {
    let request = b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    stream.write_all(request).await.ok()?;
    let answer = read_to_close(stream).await;
    answer.get(9..12)?.parse().ok()
}

#[tokio::test]
async fn an_idle_or_half_sent_request_head_is_closed_after_the_header_timeout() {
    let server = TestServer::start_with(|config| {
        config.connections.header_timeout = Duration::from_secs(1);
    })
    .await;
    let mut idle = connect(&server).await;
    let mut half = connect(&server).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let (idle_answer, half_answer) =
        tokio::join!(read_to_close(&mut idle), read_to_close(&mut half));
    assert!(idle_answer.is_empty(), "an idle connection gets no answer");
    assert!(!half_answer.contains("200 OK"));
    assert!(started.elapsed() < PATIENCE);

    assert_eq!(health_status(&mut connect(&server).await).await, Some(200));
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_with_its_code() {
    let server = TestServer::start_with(|config| {
        config.body_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = connect(&server).await;
    stream
        .write_all(
            b"POST /v1/sessions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{\"username\":",
        )
        .await
        .unwrap();

    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "got: {answer}");
    assert!(answer.contains("application/problem+json"));
    assert!(answer.contains("\"code\":\"request_timeout\""));
}

#[tokio::test]
async fn connections_past_an_addresss_share_are_refused_at_once_and_the_share_comes_back() {
    let server = TestServer::start_with(|config| {
        config.connections.per_address = 2;
    })
    .await;
    let first = connect(&server).await;
    let mut second = connect(&server).await;
    // The server counts a connection when it accepts it; a request on it shows it was.
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    second.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    let mut third = connect(&server).await;
    let answer = read_to_close(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "got: {answer}");
    assert!(answer.contains("\"code\":\"overloaded\""));
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"));

    drop(first);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if health_status(&mut connect(&server).await).await == Some(200) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the share never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_body_past_the_shared_memory_budget_is_refused_with_503_until_room_is_made() {
    let server = TestServer::start_with(|config| {
        config.max_item_bytes = 1000;
        config.body_memory = 1500;
    })
    .await;
    let put = |length: usize| {
        format!(
            "PUT /v1/me/items/note HTTP/1.1\r\nhost: x\r\ncontent-length: {length}\r\n\
             content-type: application/octet-stream\r\nconnection: close\r\n\r\n"
        )
    };
    // A whole body is read (and then refused for want of a token: it got past the budget).
    let whole_upload = || async {
        let mut stream = connect(&server).await;
        stream.write_all(put(1000).as_bytes()).await.unwrap();
        stream.write_all(&[b'x'; 1000]).await.unwrap();
        read_to_close(&mut stream).await
    };

    // A declared length that never comes holds nothing of the budget.
    let mut promised = connect(&server).await;
    promised.write_all(put(1000).as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = whole_upload().await;
    assert!(answer.starts_with("HTTP/1.1 401"), "got: {answer}");

    // Bytes that come and stall hold their share: no token needed, the body comes first.
    let mut slow = connect(&server).await;
    slow.write_all(put(1000).as_bytes()).await.unwrap();
    slow.write_all(&[b'x'; 600]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = whole_upload().await;
    assert!(answer.starts_with("HTTP/1.1 503"), "got: {answer}");
    assert!(answer.contains("\"code\":\"overloaded\""));
    assert!(answer.to_ascii_lowercase().contains("retry-after: "));
    assert_eq!(health_status(&mut connect(&server).await).await, Some(200));

    // Once the slow upload ends, its bytes are free again.
    slow.write_all(&[b'x'; 400]).await.unwrap();
    let answer = read_to_close(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "got: {answer}");
    let answer = whole_upload().await;
    assert!(answer.starts_with("HTTP/1.1 401"), "got: {answer}");
    drop(promised);
}

#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_cut_off_after_the_write_timeout() {
    let server = TestServer::start_with(|config| {
        config.connections.write_timeout = Duration::from_secs(1);
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.server.addr).await.unwrap();

    // Pipelined requests whose answers are never read: the server's writes stall, then its
    // reads, then ours. Without a write timeout this would block for ever.
    let requests = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n".repeat(1000);
    let flood = async {
        loop {
            if stream.write_all(&requests).await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(PATIENCE, flood)
        .await
        .expect("the server closed the connection of a client that does not read");

    assert_eq!(health_status(&mut connect(&server).await).await, Some(200));
}
