//! Exact bytes on the wire, against a server written with literal bytes.

use std::time::Duration;

use pitaya_client::{Client, ClientOptions, Push};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::within;

async fn expect_bytes(tcp: &mut TcpStream, expected: &[u8]) {
    let mut got = vec![0; expected.len()];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut got)).await.unwrap().unwrap();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn literal_bytes_of_a_session() {
    within(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            // Handshake request: plain JSON, never compressed.
            let mut header = [0u8; 4];
            tcp.read_exact(&mut header).await.unwrap();
            assert_eq!(header[..3], [1, 0, 0]);
            let mut body = vec![0; usize::from(header[3])];
            tcp.read_exact(&mut body).await.unwrap();
            let hello = pitaya_codec::HandshakeRequest::decode(&body).unwrap();
            assert_eq!(hello.sys.platform, "rust");
            // A heartbeat before the handshake response is legal (spec §1.6).
            tcp.write_all(&[3, 0, 0, 0]).await.unwrap();
            let reply = br#"{"code":200,"sys":{"dict":{"onPush":9,"room.echo":3},"heartbeat":0,"serializer":"json"}}"#;
            tcp.write_all(&[1, 0, 0, reply.len() as u8]).await.unwrap();
            tcp.write_all(reply).await.unwrap();
            expect_bytes(&mut tcp, &[2, 0, 0, 0]).await;

            // Request id 1 on a dictionary route: flag 0x01, id 01, code 00 03, "hi".
            expect_bytes(&mut tcp, &[4, 0, 0, 6, 0x01, 0x01, 0, 3, b'h', b'i']).await;
            // A push with a coded route, then the response (flag 0x04, id 1, "ok").
            tcp.write_all(&[4, 0, 0, 5, 0x07, 0, 9, b'y', b'o']).await.unwrap();
            tcp.write_all(&[4, 0, 0, 4, 0x04, 0x01, b'o', b'k']).await.unwrap();

            // Request id 2 on a plain route with no data: flag 0x00, id 02, len 0x05, "a.b.c".
            expect_bytes(&mut tcp, &[4, 0, 0, 8, 0x00, 0x02, 5, b'a', b'.', b'b', b'.', b'c']).await;
            // Error response, flag 0x24.
            let err = br#"{"code":"PIT-404","msg":"nope"}"#;
            tcp.write_all(&[4, 0, 0, 2 + err.len() as u8, 0x24, 0x02]).await.unwrap();
            tcp.write_all(err).await.unwrap();

            // Notify on a dictionary route: flag 0x03, code 00 03, "n".
            expect_bytes(&mut tcp, &[4, 0, 0, 4, 0x03, 0, 3, b'n']).await;
            tcp.write_all(&[5, 0, 0, 0]).await.unwrap();
            let mut rest = Vec::new();
            tcp.read_to_end(&mut rest).await.unwrap();
            rest
        });

        let (client, mut pushes) = Client::connect(&addr, ClientOptions::default()).await.unwrap();
        assert_eq!(client.server_heartbeats(), 1);
        assert_eq!(client.request("room.echo", "hi").await.unwrap(), "ok");
        assert_eq!(
            pushes.recv().await.unwrap(),
            Push { route: "onPush".into(), data: "yo".into() }
        );
        let err = client.request("a.b.c", "").await.unwrap_err();
        assert_eq!(err.server_code(), Some("PIT-404"));
        client.notify("room.echo", "n").await.unwrap();
        client.closed().await;
        assert!(client.kicked());
        // After the kick the client closes without sending anything more.
        assert_eq!(server.await.unwrap(), b"");
    })
    .await;
}
