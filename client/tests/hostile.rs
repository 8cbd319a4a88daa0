//! A scripted fake server that misbehaves: the client must neither panic nor hang, only
//! fail the affected calls and reconnect.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::codec::FramedRead;
use zk_client::{Client, ClientOptions, Error, SessionState};
use zk_jute::proto::{ConnectResponse, ExistsResponse, ReplyHeader, RequestHeader};
use zk_jute::{FrameCodec, OpCode, Reader, Record, to_bytes};

/// What the fake server answers to one request (after the handshake), on connection
/// number `conn`.
enum Answer {
    /// These raw bytes (whole frames, or not).
    Raw(Vec<u8>),
    /// Close the connection.
    Close,
}

fn frame(parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = BytesMut::new();
    out.put_i32(len as i32);
    for part in parts {
        out.put_slice(part);
    }
    out.to_vec()
}

fn reply(xid: i32, err: i32, body: &[u8]) -> Vec<u8> {
    let header = to_bytes(&ReplyHeader { xid, zxid: 1, err });
    frame(&[&header, body])
}

fn exists_ok(xid: i32) -> Vec<u8> {
    reply(xid, 0, &to_bytes(&ExistsResponse::default()))
}

type Script = dyn Fn(usize, RequestHeader) -> Answer + Send + Sync;

/// Serves connections: answers the handshake (timeout `timeout_ms`), then each request as
/// `script` says. Returns the address.
async fn fake(timeout_ms: i32, script: Arc<Script>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let conns = Arc::new(Mutex::new(0_usize));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let conn = {
                let mut n = conns.lock().unwrap();
                *n += 1;
                *n
            };
            let script = script.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut frames = FramedRead::new(read, FrameCodec::default());
                let Some(Ok(_connect)) = frames.next().await else {
                    return;
                };
                let response = ConnectResponse {
                    protocol_version: 0,
                    timeout: timeout_ms,
                    session_id: 0x42,
                    passwd: Some(Bytes::from_static(&[7; 16])),
                    read_only: Some(false),
                };
                if write
                    .write_all(&frame(&[&to_bytes(&response)]))
                    .await
                    .is_err()
                {
                    return;
                }
                while let Some(Ok(request)) = frames.next().await {
                    let header = RequestHeader::decode(&mut Reader::new(request)).unwrap();
                    if header.r#type == OpCode::Ping.code() {
                        let _ = write.write_all(&reply(-2, 0, &[])).await;
                        continue;
                    }
                    match script(conn, header) {
                        Answer::Raw(bytes) => {
                            if write.write_all(&bytes).await.is_err() {
                                return;
                            }
                        }
                        Answer::Close => return,
                    }
                }
            });
        }
    });
    addr
}

fn options() -> ClientOptions {
    ClientOptions {
        session_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(5),
        reconnect_delay: Duration::from_millis(50),
        ..ClientOptions::default()
    }
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("in time")
}

/// On the first connection, `bad` answers the first request; later connections behave.
async fn first_answer_is(bad: fn(i32) -> Vec<u8>) -> (Result<(), Error>, Client) {
    let addr = fake(
        3000,
        Arc::new(move |conn, header| {
            if conn == 1 {
                Answer::Raw(bad(header.xid))
            } else {
                Answer::Raw(exists_ok(header.xid))
            }
        }),
    )
    .await;
    let client = within(Client::connect(&addr, options())).await.unwrap();
    let first = within(client.exists("/a")).await.map(|_| ());
    (first, client)
}

async fn recovers(client: &Client) {
    // The client reconnected with the same session and works.
    let stat = within(async {
        loop {
            match client.exists("/a").await {
                Ok(stat) => return stat,
                Err(Error::ConnectionLoss) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert!(stat.is_some());
    assert_eq!(client.session_id(), 0x42);
    assert_eq!(client.state(), SessionState::Connected);
}

#[tokio::test]
async fn a_reply_out_of_order_drops_the_connection() {
    let (first, client) = first_answer_is(|xid| exists_ok(xid + 7)).await;
    assert_eq!(first, Err(Error::ConnectionLoss));
    recovers(&client).await;
}

#[tokio::test]
async fn an_oversized_frame_drops_the_connection() {
    let (first, client) = first_answer_is(|_| vec![0x7f, 0xff, 0xff, 0xff, 0, 0]).await;
    assert_eq!(first, Err(Error::ConnectionLoss));
    recovers(&client).await;
}

#[tokio::test]
async fn a_negative_frame_length_drops_the_connection() {
    let (first, client) = first_answer_is(|_| vec![0xff, 0xff, 0xff, 0xf0]).await;
    assert_eq!(first, Err(Error::ConnectionLoss));
    recovers(&client).await;
}

#[tokio::test]
async fn a_truncated_notification_drops_the_connection() {
    let (first, client) = first_answer_is(|_| reply(-1, 0, &[0, 0, 0, 3, 0xff])).await;
    assert_eq!(first, Err(Error::ConnectionLoss));
    recovers(&client).await;
}

#[tokio::test]
async fn an_unreadable_reply_body_fails_that_call_only() {
    let (first, client) = first_answer_is(|xid| reply(xid, 0, &[1, 2, 3])).await;
    assert!(matches!(first, Err(Error::Protocol(_))), "{first:?}");
    // The connection stays: the frame was whole, only its body was bad.
    assert_eq!(client.state(), SessionState::Connected);
}

#[tokio::test]
async fn unknown_error_codes_and_event_types_are_tolerated() {
    let (first, client) = first_answer_is(|xid| {
        let mut bytes = reply(
            -1,
            0,
            &to_bytes(&zk_jute::proto::WatcherEvent {
                r#type: 99,
                state: 3,
                path: "/a".into(),
            }),
        );
        bytes.extend(reply(xid, -999, &[]));
        bytes
    })
    .await;
    assert_eq!(first, Err(Error::Unknown(-999)));
    assert_eq!(client.state(), SessionState::Connected);
}

#[tokio::test]
async fn an_expired_answer_to_the_handshake_fails_connect() {
    let addr = fake(0, Arc::new(|_, _| Answer::Close)).await;
    assert_eq!(
        within(Client::connect(&addr, options())).await.unwrap_err(),
        Error::SessionExpired
    );
}

#[tokio::test]
async fn a_connection_closed_mid_request_fails_it_with_connection_loss() {
    let addr = fake(
        3000,
        Arc::new(|conn, header| {
            if conn == 1 {
                Answer::Close
            } else {
                Answer::Raw(exists_ok(header.xid))
            }
        }),
    )
    .await;
    let client = within(Client::connect(&addr, options())).await.unwrap();
    assert_eq!(
        within(client.exists("/a")).await.unwrap_err(),
        Error::ConnectionLoss
    );
    recovers(&client).await;
}
