//! Known answers from pyspnego 0.12.4 (an independent implementation of
//! MS-CSSP: `TSRequest.pack`, `TSCredentials.pack`, `_get_pub_key_auth`,
//! `get_certificate_public_key`), round trips and refusals.

use super::binding::{client_value, server_value, subject_public_key};
use super::der::{TsPasswordCreds, TsRequest};
use super::*;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0);
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// TSRequest(2, nego_tokens=NegoData(b"\x00\x01\x02")): also the example
/// of rdp-rs's documentation, a third encoder.
const V2_NEGO: &str = "3012a003020102a10b30093007a0050403000102";
/// TSRequest(6, two nego tokens (the second 130 bytes: long-form lengths),
/// pub_key_auth=b"\xaa"*20, client_nonce=bytes(range(32))).
const V6_FULL: &str = "3081e1a003020106a1819d30819a300da00b04094e544c4d5353500003308188a0818504818278787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878a3160414aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa5220420000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// TSRequest(6, error_code=0xC000006D) (STATUS_LOGON_FAILURE).
const V6_ERROR: &str = "300ea003020106a407020500c000006d";
/// TSCredentials(TSPasswordCreds("PEER", "testuser", "pässwörd")).
const CREDS: &str = "303fa003020101a13804363034a00a04085000450045005200a112041074006500730074007500730065007200a21204107000e400730073007700f60072006400";

#[test]
fn ts_request_known_answers() {
    let v2 = TsRequest {
        version: 2,
        nego_tokens: vec![vec![0, 1, 2]],
        ..TsRequest::default()
    };
    assert_eq!(v2.encode(), hex(V2_NEGO));
    assert_eq!(TsRequest::decode(&hex(V2_NEGO)).unwrap(), v2);

    let nonce: [u8; 32] = std::array::from_fn(|i| i as u8);
    let full = TsRequest {
        version: 6,
        nego_tokens: vec![b"NTLMSSP\x00\x03".to_vec(), vec![b'x'; 130]],
        pub_key_auth: Some(vec![0xaa; 20]),
        client_nonce: Some(nonce),
        ..TsRequest::default()
    };
    assert_eq!(full.encode(), hex(V6_FULL));
    assert_eq!(TsRequest::decode(&hex(V6_FULL)).unwrap(), full);

    let err = TsRequest::decode(&hex(V6_ERROR)).unwrap();
    assert_eq!(err.error_code, Some(0xC000_006D));
    assert_eq!(
        TsRequest {
            version: 6,
            error_code: Some(0xC000_006D),
            ..TsRequest::default()
        }
        .encode(),
        hex(V6_ERROR)
    );
}

#[test]
fn error_code_as_a_signed_32_bit_integer() {
    // 0xC000006D written as a negative INTEGER (4 bytes, top bit set),
    // as a signed 32-bit NTSTATUS.
    let b = hex("300da003020106a4060204c000006d");
    assert_eq!(TsRequest::decode(&b).unwrap().error_code, Some(0xC000_006D));
}

#[test]
fn ts_credentials_known_answer_and_debug() {
    let creds = TsPasswordCreds {
        domain: "PEER".into(),
        user: "testuser".into(),
        password: Secret::new("pässwörd"),
    };
    assert_eq!(creds.encode_ts_credentials().as_slice(), hex(CREDS));
    let back = TsPasswordCreds::decode_ts_credentials(&hex(CREDS)).unwrap();
    assert_eq!(back, creds);
    let shown = format!("{back:?}");
    assert!(
        !shown.contains("pässwörd") && shown.contains("redacted"),
        "{shown}"
    );
}

#[test]
fn long_fields_round_trip() {
    // Lengths in 1, 2 and 3 bytes.
    for n in [0usize, 127, 128, 255, 256, 65535, 65536, 100_000] {
        let r = TsRequest {
            version: 6,
            auth_info: Some(vec![7; n]),
            ..TsRequest::default()
        };
        assert_eq!(TsRequest::decode(&r.encode()).unwrap(), r, "{n}");
    }
    for v in [
        0u32,
        2,
        127,
        128,
        255,
        256,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX,
    ] {
        let r = TsRequest {
            version: v,
            error_code: Some(v),
            ..TsRequest::default()
        };
        assert_eq!(TsRequest::decode(&r.encode()).unwrap(), r, "{v}");
    }
}

#[test]
fn every_truncation_and_bad_length_is_refused() {
    for k in [V2_NEGO, V6_FULL, V6_ERROR] {
        let good = hex(k);
        for cut in 0..good.len() {
            assert!(TsRequest::decode(&good[..cut]).is_err(), "{k} cut at {cut}");
        }
        let mut extra = good.clone();
        extra.push(0);
        assert!(TsRequest::decode(&extra).is_err());
        // Every byte changed to every value: never a panic.
        for i in 0..good.len().min(40) {
            for b in [0x00, 0x7f, 0x80, 0x81, 0x84, 0x85, 0xff] {
                let mut m = good.clone();
                m[i] = b;
                let _ = TsRequest::decode(&m);
            }
        }
    }
    let creds = hex(CREDS);
    for cut in 0..creds.len() {
        assert!(TsPasswordCreds::decode_ts_credentials(&creds[..cut]).is_err());
    }
}

#[test]
fn odd_structures_are_refused() {
    for (bad, why) in [
        ("3080a003020106", "indefinite"),
        ("3085000000000000", "length too long"),
        ("3005a003020106a0", "unknown/repeated"),
        ("3009a003020106a6020400", "unknown tag [6]"),
        ("300ca003020106a303040100a203040100", "out of order"),
        ("300ba003020106a5040402abcd", "short nonce"),
        ("3009a003020106a402020100", "wrong inner tag"),
        ("3006a0040202ff", "bad version bytes"),
        ("300ba0090207010203040506", "version too long"),
    ] {
        assert!(TsRequest::decode(&hex(bad)).is_err(), "{why}");
    }
}

const CERT: &str = "3082020a30820173a00302010202147b8aa195780fa843a3014a1b88257c115307b200300d06092a864886f70d01010b050030173115301306035504030c0c435245445353502d74657374301e170d3236313230343133333533395a170d3336313230313133333533395a30173115301306035504030c0c435245445353502d7465737430819f300d06092a864886f70d010101050003818d0030818902818100a0c4bf68710e7b3f3367f109ac6fafebea9ff2714e42a702c05fa304c35dac07dd12f06d17870c970761c301dd2becab3b230d16f255d0c0ba612d579afb871f1ced804d7d9bf912fc3edf0ac82841b34b292d71553a096e91a8833a471b7dbbd0633a9f2765ef7f07d0c277f3c0a19134ebc7a7b502164c4e794c4fa20aaf790203010001a3533051301d0603551d0e0416041436d3f7f76568fcd303692ef1eef5c3df31384ff7301f0603551d2304183016801436d3f7f76568fcd303692ef1eef5c3df31384ff7300f0603551d130101ff040530030101ff300d06092a864886f70d01010b05000381810031daa6f9c77f15ff745f614d6bbd6aed52a99060e7c97fd74fad5da3101254c6e42600ab3a018377c2ba5f94979016b7a4d8f48c8ff2ad6b21d23271182dd59573622e1a7a1cf6a6d76eacf55b377aa6d4ad67eee2167f4811cdb7299bb784900af0e5274f0b3d6cb60bb9417cbb35342f67ffdb3000d867e66dd8832dd1ba6c";
/// The key pyspnego binds for CERT (cryptography's PKCS#1 RSAPublicKey).
const CERT_KEY: &str = "30818902818100a0c4bf68710e7b3f3367f109ac6fafebea9ff2714e42a702c05fa304c35dac07dd12f06d17870c970761c301dd2becab3b230d16f255d0c0ba612d579afb871f1ced804d7d9bf912fc3edf0ac82841b34b292d71553a096e91a8833a471b7dbbd0633a9f2765ef7f07d0c277f3c0a19134ebc7a7b502164c4e794c4fa20aaf790203010001";

#[test]
fn subject_public_key_known_answer() {
    let cert = hex(CERT);
    assert_eq!(subject_public_key(&cert).unwrap(), hex(CERT_KEY));
    for cut in 0..cert.len() / 2 {
        assert!(subject_public_key(&cert[..cut]).is_err());
    }
    assert!(subject_public_key(b"").is_err());
}

#[test]
fn binding_known_answers() {
    let key: Vec<u8> = (1..40).collect();
    let nonce: [u8; 32] = std::array::from_fn(|i| 100 + i as u8);
    // Versions 5 and 6: SHA-256 with the magic strings (NUL included).
    for v in [5, 6] {
        assert_eq!(
            client_value(v, &key, &nonce),
            hex("3366376bb83b657ff76961089c3623f4964d872458e28c4afe820598fc266255")
        );
        assert_eq!(
            server_value(v, &key, &nonce),
            hex("273904743e97245db6b3875cb71694b93f64cec9caac9bc5aa7f9e156c5f3ec7")
        );
    }
    // Versions 2 to 4: the key, and for the server the key with its first
    // byte plus one; the nonce plays no part.
    for v in [2, 3, 4] {
        assert_eq!(client_value(v, &key, &nonce), key);
        let mut plus_one = key.clone();
        plus_one[0] += 1;
        assert_eq!(server_value(v, &key, &nonce), plus_one);
    }
}

#[test]
fn status_texts() {
    let e = CredSspError::Server {
        code: 0xC000_006D,
        stage: "the NTLM negotiation",
    };
    let s = e.to_string();
    assert!(
        s.contains("0xC000006D") && s.contains("LOGON_FAILURE"),
        "{s}"
    );
}

#[test]
fn client_starts_with_a_client_hello_and_hides_the_password() {
    let (client, hello) =
        CredSspClient::new("PEER\\testuser", Secret::new("hunter2"), None, None).unwrap();
    // A TLS handshake record (22) carrying a ClientHello (1).
    assert_eq!(hello[0], 22);
    assert_eq!(hello[5], 1);
    let shown = format!("{client:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("testuser"));
}

#[test]
fn garbage_from_the_server_fails_cleanly() {
    let (mut client, _) = CredSspClient::new("u", Secret::new("p"), None, None).unwrap();
    assert!(client.step(Some(b"not tls at all")).is_err());
    // The context is unusable afterwards.
    assert!(client.step(Some(b"")).is_err());
    let (mut client, _) = CredSspClient::new("u", Secret::new("p"), None, None).unwrap();
    assert!(client.step(None).is_err());
}
