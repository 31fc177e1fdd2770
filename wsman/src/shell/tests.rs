use super::*;
use crate::soap::dom;
use crate::soap::envelope::{build, parse_response, Header, ResponseBody};

const W: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";

/// Wraps a request in a full envelope and parses it back, as a server would.
fn roundtrip(req: &Request) -> dom::Element {
    let h = Header {
        action: req.action,
        to: "http://localhost:5985/wsman",
        resource_uri: &req.resource_uri,
        message_id: "uuid:00000000-0000-0000-0000-000000000001",
        session_id: "uuid:00000000-0000-0000-0000-000000000002",
        max_envelope_size: 153600,
        operation_timeout: Duration::from_secs(20),
        locale: "en-US",
        data_locale: "en-US",
        options: &req.options,
        selectors: &req.selectors,
    };
    dom::parse(&build(&h, &req.body)).unwrap()
}

fn body_of(env: &dom::Element) -> &dom::Element {
    env.child(ns::S, "Body").unwrap()
}

fn selector(env: &dom::Element) -> Option<String> {
    env.path(&[(ns::S, "Header"), (W, "SelectorSet"), (W, "Selector")])
        .map(|s| s.text.clone())
}

fn response_body(inner: &str) -> dom::Element {
    let xml = format!(
        r#"<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"><s:Header><a:Action>x</a:Action><a:MessageID>uuid:S</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>uuid:R</a:RelatesTo></s:Header><s:Body>{inner}</s:Body></s:Envelope>"#
    );
    match parse_response(&xml, "uuid:R").unwrap() {
        ResponseBody::Body(b) => b,
        ResponseBody::Fault(f) => panic!("{f}"),
    }
}

#[test]
fn create_request_for_powershell() {
    let req = CreateShell::powershell("JEA.Maintenance")
        .with_shell_id("F5D64B74-8E54-4B03-A4D1-1002D9765852")
        .with_idle_timeout(Duration::from_secs(7200))
        .with_creation_xml(vec![0, 1, 2, 250, 251, 252]);
    let env = roundtrip(&create(&req));
    let hd = env.child(ns::S, "Header").unwrap();
    assert_eq!(
        hd.child(W, "ResourceURI").unwrap().text,
        "http://schemas.microsoft.com/powershell/JEA.Maintenance"
    );
    let opt = hd.path(&[(W, "OptionSet"), (W, "Option")]).unwrap();
    assert_eq!(opt.attr("Name"), Some("protocolversion"));
    assert_eq!(opt.attr("MustComply"), Some("true"));
    assert_eq!(opt.text, "2.3");
    assert_eq!(selector(&env), None);
    let shell = body_of(&env).child(ns::RSP, "Shell").unwrap();
    assert_eq!(
        shell.attr("ShellId"),
        Some("F5D64B74-8E54-4B03-A4D1-1002D9765852")
    );
    assert_eq!(
        shell.child(ns::RSP, "InputStreams").unwrap().text,
        "stdin pr"
    );
    assert_eq!(
        shell.child(ns::RSP, "OutputStreams").unwrap().text,
        "stdout"
    );
    assert_eq!(shell.child(ns::RSP, "IdleTimeOut").unwrap().text, "PT7200S");
    let cx = shell.child(ns::POWERSHELL, "creationXml").unwrap();
    assert_eq!(B64.decode(&cx.text).unwrap(), vec![0, 1, 2, 250, 251, 252]);
}

/// A CreateResponse as Windows Server sends it (trimmed of whitespace).
const CREATE_RESPONSE: &str = r#"<x:ResourceCreated><a:Address>http://win.example:5985/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>http://schemas.microsoft.com/powershell/Microsoft.PowerShell</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">F5D64B74-8E54-4B03-A4D1-1002D9765852</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated><rsp:Shell xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><rsp:ShellId>F5D64B74-8E54-4B03-A4D1-1002D9765852</rsp:ShellId><rsp:Name>WinRM1</rsp:Name><rsp:ResourceUri>http://schemas.microsoft.com/powershell/Microsoft.PowerShell</rsp:ResourceUri><rsp:Owner>WIN\Administrator</rsp:Owner><rsp:ClientIP>10.0.0.9</rsp:ClientIP><rsp:ProcessId>3120</rsp:ProcessId><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:InputStreams>stdin pr</rsp:InputStreams><rsp:OutputStreams>stdout</rsp:OutputStreams><rsp:MaxIdleTimeOut>PT2147483.647S</rsp:MaxIdleTimeOut><rsp:Locale>en-US</rsp:Locale><rsp:DataLocale>en-US</rsp:DataLocale><rsp:CompressionMode>XpressCompression</rsp:CompressionMode><rsp:ProfileLoaded>Yes</rsp:ProfileLoaded><rsp:Encoding>UTF8</rsp:Encoding><rsp:BufferMode>Block</rsp:BufferMode><rsp:State>Connected</rsp:State><rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>"#;

#[test]
fn create_response_gives_shell_and_selectors() {
    let req = CreateShell::powershell("Microsoft.PowerShell");
    let shell = parse_create(&response_body(CREATE_RESPONSE), &req).unwrap();
    assert_eq!(shell.id, "F5D64B74-8E54-4B03-A4D1-1002D9765852");
    assert_eq!(
        shell.selectors,
        vec![(
            "ShellId".into(),
            "F5D64B74-8E54-4B03-A4D1-1002D9765852".into()
        )]
    );
    assert_eq!(shell.resource_uri, req.resource_uri);
    // Without ResourceCreated the rsp:ShellId still identifies the shell.
    let only_shell = r#"<rsp:Shell><rsp:ShellId>ABC</rsp:ShellId></rsp:Shell>"#;
    let s = parse_create(&response_body(only_shell), &req).unwrap();
    assert_eq!(s, Shell::new("ABC", req.resource_uri.clone()));
    assert!(parse_create(&response_body("<rsp:Shell/>"), &req).is_err());
}

#[test]
fn command_send_receive_signal_delete_requests() {
    let shell = Shell::new(
        "SHELL-1",
        "http://schemas.microsoft.com/powershell/Microsoft.PowerShell",
    );
    let env = roundtrip(&command(
        &shell,
        &CommandRequest::psrp("CMD-1", b"\x00frag"),
    ));
    assert_eq!(selector(&env).as_deref(), Some("SHELL-1"));
    let cl = body_of(&env).child(ns::RSP, "CommandLine").unwrap();
    assert_eq!(cl.attr("CommandId"), Some("CMD-1"));
    assert_eq!(cl.child(ns::RSP, "Command").unwrap().text, "");
    assert_eq!(
        B64.decode(&cl.child(ns::RSP, "Arguments").unwrap().text)
            .unwrap(),
        b"\x00frag"
    );

    let env = roundtrip(&send(&shell, Some("CMD-1"), "stdin", b"abc", true));
    let st = body_of(&env)
        .path(&[(ns::RSP, "Send"), (ns::RSP, "Stream")])
        .unwrap();
    assert_eq!(
        (st.attr("Name"), st.attr("CommandId"), st.attr("End")),
        (Some("stdin"), Some("CMD-1"), Some("true"))
    );
    assert_eq!(B64.decode(&st.text).unwrap(), b"abc");
    let env = roundtrip(&send(&shell, None, "pr", b"x", false));
    let st = body_of(&env)
        .path(&[(ns::RSP, "Send"), (ns::RSP, "Stream")])
        .unwrap();
    assert_eq!(
        (st.attr("Name"), st.attr("CommandId"), st.attr("End")),
        (Some("pr"), None, None)
    );

    let env = roundtrip(&receive(&shell, None));
    let ds = body_of(&env)
        .path(&[(ns::RSP, "Receive"), (ns::RSP, "DesiredStream")])
        .unwrap();
    assert_eq!((ds.text.as_str(), ds.attr("CommandId")), ("stdout", None));
    let opt = env
        .path(&[(ns::S, "Header"), (W, "OptionSet"), (W, "Option")])
        .unwrap();
    assert_eq!(opt.attr("Name"), Some("WSMAN_CMDSHELL_OPTION_KEEPALIVE"));
    let env = roundtrip(&receive(&shell, Some("CMD-1")));
    let ds = body_of(&env)
        .path(&[(ns::RSP, "Receive"), (ns::RSP, "DesiredStream")])
        .unwrap();
    assert_eq!(ds.attr("CommandId"), Some("CMD-1"));

    let env = roundtrip(&signal(&shell, "CMD-1", signal::PS_CTRL_C));
    let sg = body_of(&env).child(ns::RSP, "Signal").unwrap();
    assert_eq!(sg.attr("CommandId"), Some("CMD-1"));
    assert_eq!(
        sg.child(ns::RSP, "Code").unwrap().text,
        "powershell/signal/crtl_c"
    );

    let del = delete(&shell);
    assert_eq!(del.action, ns::action::DELETE);
    let env = roundtrip(&del);
    assert!(body_of(&env).children.is_empty());
    assert_eq!(selector(&env).as_deref(), Some("SHELL-1"));
}

#[test]
fn command_response() {
    let b = response_body(
        "<rsp:CommandResponse><rsp:CommandId>7A5C1E5D-9C5E-4F4B-A0A9-0D2A8B7C6E51</rsp:CommandId></rsp:CommandResponse>",
    );
    assert_eq!(
        parse_command(&b).unwrap(),
        "7A5C1E5D-9C5E-4F4B-A0A9-0D2A8B7C6E51"
    );
    assert!(parse_command(&response_body("<rsp:CommandResponse/>")).is_err());
}

#[test]
fn receive_response_streams_and_state() {
    let b = response_body(concat!(
        r#"<rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="C1">AAEC</rsp:Stream>"#,
        r#"<rsp:Stream Name="stdout" CommandId="C1">"#,
        "\r\n  AwQF\r\n",
        r#"</rsp:Stream><rsp:Stream Name="stdout" CommandId="C1" End="true"></rsp:Stream>"#,
        r#"<rsp:CommandState CommandId="C1" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"><rsp:ExitCode>0</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>"#
    ));
    let r = parse_receive(&b).unwrap();
    assert_eq!(r.streams.len(), 3);
    assert_eq!(r.stream_bytes("stdout"), vec![0, 1, 2, 3, 4, 5]);
    assert!(r.streams[2].end);
    assert!(r.is_done());
    let cs = r.command_state.unwrap();
    assert_eq!(
        (cs.command_id.as_deref(), cs.exit_code),
        (Some("C1"), Some(0))
    );

    let running = response_body(
        r#"<rsp:ReceiveResponse><rsp:CommandState CommandId="C1" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"/></rsp:ReceiveResponse>"#,
    );
    let r = parse_receive(&running).unwrap();
    assert!(r.streams.is_empty());
    assert_eq!(r.command_state.unwrap().state, CommandStateKind::Running);
}

#[test]
fn receive_response_errors() {
    for bad in [
        "<rsp:Other/>",
        r#"<rsp:ReceiveResponse><rsp:Stream>AAAA</rsp:Stream></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:Stream Name="stdout">!!!</rsp:Stream></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:CommandState/></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:CommandState State="x/Done"><rsp:ExitCode>x</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>"#,
    ] {
        assert!(
            parse_receive(&response_body(bad)).is_err(),
            "accepted {bad}"
        );
    }
}

#[test]
fn winrs_cmd_shell_and_command() {
    let env = roundtrip(&create(&CreateShell::cmd()));
    assert_eq!(
        env.path(&[(ns::S, "Header"), (W, "ResourceURI")])
            .unwrap()
            .text,
        CMD_RESOURCE_URI
    );
    let shell = body_of(&env).child(ns::RSP, "Shell").unwrap();
    assert_eq!(
        shell.child(ns::RSP, "OutputStreams").unwrap().text,
        "stdout stderr"
    );
    assert!(shell.child(ns::POWERSHELL, "creationXml").is_none());

    let sh = Shell::new("S", CMD_RESOURCE_URI);
    let env = roundtrip(&command(
        &sh,
        &CommandRequest::new("cmd", ["/c", "echo a&b"]),
    ));
    let cl = body_of(&env).child(ns::RSP, "CommandLine").unwrap();
    assert_eq!(cl.attr("CommandId"), None);
    assert_eq!(cl.child(ns::RSP, "Command").unwrap().text, "cmd");
    let args: Vec<_> = cl
        .children_named(ns::RSP, "Arguments")
        .map(|a| a.text.as_str())
        .collect();
    assert_eq!(args, ["/c", "echo a&b"]);

    let env = roundtrip(&receive_streams(&sh, Some("C"), "stdout stderr"));
    let ds = body_of(&env)
        .path(&[(ns::RSP, "Receive"), (ns::RSP, "DesiredStream")])
        .unwrap();
    assert_eq!(ds.text, "stdout stderr");
}

#[test]
fn sequenced_receive_request_and_echoed_sequence_id() {
    let sh = Shell::new(
        "S",
        "http://schemas.microsoft.com/powershell/Microsoft.PowerShell",
    );
    let env = roundtrip(&receive_sequenced(&sh, Some("C"), "stdout", 7));
    let el = body_of(&env).child(ns::RSP, "Receive").unwrap();
    assert_eq!(el.attr("SequenceId"), Some("7"));
    let ds = el.child(ns::RSP, "DesiredStream").unwrap();
    assert_eq!(
        (ds.attr("CommandId"), ds.text.as_str()),
        (Some("C"), "stdout")
    );
    // Without a sequence, no attribute (the plain Receive).
    let env = roundtrip(&receive(&sh, None));
    let el = body_of(&env).child(ns::RSP, "Receive").unwrap();
    assert_eq!(el.attr("SequenceId"), None);

    // Echoed in either spelling; absent or not a number: None.
    for (attr, want) in [
        (r#" SequenceId="7""#, Some(7)),
        (r#" SequenceID="18446744073709551615""#, Some(u64::MAX)),
        (r#" SequenceId="-1""#, None),
        (r#" SequenceId="x""#, None),
        ("", None),
    ] {
        let b = response_body(&format!(
            r#"<rsp:ReceiveResponse{attr}><rsp:Stream Name="stdout">AAEC</rsp:Stream></rsp:ReceiveResponse>"#
        ));
        assert_eq!(parse_receive(&b).unwrap().sequence_id, want, "{attr}");
    }
}

/// The SIMD decoder takes a subset of what the `base64` engine takes, with
/// the same bytes out; everything else falls back to the engine, so every
/// stream text decodes (or fails) exactly as it did with the engine alone.
#[test]
fn stream_base64_decodes_as_the_engine_did() {
    let engine = |text: &str| {
        let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        B64.decode(compact).ok()
    };
    let mut texts: Vec<String> = [
        "",
        "QQ==",
        "QQ",
        "QUI=",
        "QUI",
        "QUJD",
        "QR==",
        "QUJ=",
        "Q===",
        "=",
        "==",
        "QQ=A",
        "QU=D",
        "QUJD\r\nRA==",
        " QUJD ",
        "QUJD\tRA",
        "QUJD-_",
        "QUJD+/==",
        "QUJD+/8=",
        "QUJD?A==",
        "é===",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Deterministic pseudo-random texts over the alphabet, padding, a line
    // break and an outsider, of every length to past the SIMD block sizes.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for len in 0..200 {
        for variant in 0..6 {
            let mut t: Vec<u8> = (0..len).map(|_| alphabet[(next() % 64) as usize]).collect();
            match variant {
                1 if len > 0 => t[len - 1] = b'=',
                2 if len > 1 => t[len - 2..].copy_from_slice(b"=="),
                3 if len > 0 => t[(next() % len as u64) as usize] = b'=',
                4 if len > 0 => t[(next() % len as u64) as usize] = b'\n',
                5 if len > 0 => t[(next() % len as u64) as usize] = b'.',
                _ => {}
            }
            texts.push(String::from_utf8(t).unwrap());
        }
        // Valid encodings of random bytes, which must all decode.
        let raw: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        texts.push(B64.encode(&raw));
    }
    for t in &texts {
        assert_eq!(decode_stream(t, "stdout").ok(), engine(t), "{t:?}");
    }
}

/// A Receive response envelope around `inner` (the body's content).
fn receive_envelope(inner: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse</a:Action><a:MessageID>uuid:S</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>uuid:R</a:RelatesTo><w:OperationID s:mustUnderstand="false">uuid:O</w:OperationID></s:Header><s:Body>{inner}</s:Body></s:Envelope>"#
    )
}

/// What the general way (tree, then `parse_receive`) reads.
fn receive_by_tree(xml: &str, message_id: &str) -> Option<ReceiveResponse> {
    match parse_response(xml, message_id).ok()? {
        ResponseBody::Body(b) => parse_receive(&b).ok(),
        ResponseBody::Fault(_) => None,
    }
}

#[test]
fn one_pass_receive_reader_reads_what_the_tree_reads() {
    const DONE: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done";
    let taken = [
        format!(
            r#"<rsp:ReceiveResponse SequenceID="7"><rsp:Stream Name="stdout" CommandId="C1">AAEC</rsp:Stream><rsp:Stream Name="stdout" CommandId="C1">{}</rsp:Stream><rsp:Stream Name="stdout" CommandId="C1" End="true"></rsp:Stream><rsp:Stream Name="stdout" End="TRUE"/><rsp:CommandState CommandId="C1" State="{DONE}"><rsp:ExitCode> 0 </rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>"#,
            B64.encode(vec![7u8; 5000])
        ),
        r#"<rsp:ReceiveResponse><rsp:CommandState CommandId="C1" State="x/Running"/></rsp:ReceiveResponse>"#.to_string(),
        // Line breaks in the base64 (decoded the slow way, still in one pass).
        "<rsp:ReceiveResponse>\r\n<rsp:Stream Name=\"stdout\">\r\n  AwQF\r\n</rsp:Stream>\n</rsp:ReceiveResponse>".to_string(),
        r#"<rsp:ReceiveResponse SequenceId=" 12 "/>"#.to_string(),
    ];
    for inner in &taken {
        let xml = receive_envelope(inner);
        let fast = read_receive_response(&xml, "uuid:R");
        assert!(fast.is_some(), "declined {inner}");
        assert_eq!(fast, receive_by_tree(&xml, "uuid:R"), "{inner}");
    }
    assert_eq!(
        read_receive_response(&receive_envelope(&taken[0]), "uuid:R")
            .unwrap()
            .sequence_id,
        Some(7)
    );
    // Declined: left to the general way, which reads some of them and
    // refuses the others.
    let declined = [
        r#"<s:Fault><s:Code><s:Value>s:Receiver</s:Value></s:Code><s:Reason><s:Text xml:lang="en-US">x</s:Text></s:Reason></s:Fault>"#,
        r#"<rsp:Other/>"#,
        r#"<rsp:ReceiveResponse/><rsp:ReceiveResponse/>"#,
        r#"<rsp:ReceiveResponse><rsp:Stream>AAAA</rsp:Stream></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:Stream Name="stdout">!!!</rsp:Stream></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:Stream Name="stdout">AA&#65;A</rsp:Stream></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:Stream Name="stdout">AA<!-- x -->AA</rsp:Stream></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:Stream Name="stdout"><![CDATA[AAAA]]></rsp:Stream></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:Stream Name="stdout">AAAA<x/></rsp:Stream></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:CommandState/></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:CommandState State="x/Done"><rsp:ExitCode>x</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:CommandState State="x/Done"><rsp:ExitCode/></rsp:CommandState></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:CommandState State="x/Done"/><rsp:CommandState State="x/Running"/></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:Stream Name="a" Name="b"/></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:Stream Name="stdout" q:x="1"/></rsp:ReceiveResponse>"#,
        r#"<rsp:ReceiveResponse><rsp:Stream Name="a&bogus;"/></rsp:ReceiveResponse>"#,
    ];
    for inner in declined {
        let xml = receive_envelope(inner);
        assert_eq!(read_receive_response(&xml, "uuid:R"), None, "took {inner}");
    }
    // The envelope itself: another RelatesTo, no ReceiveResponse, content
    // after the root, a truncated document, no envelope.
    let good = receive_envelope(&taken[1]);
    assert_eq!(read_receive_response(&good, "uuid:other"), None);
    assert_eq!(
        read_receive_response(&format!("{good}<x/>"), "uuid:R"),
        None
    );
    assert_eq!(read_receive_response(&format!("{good}x"), "uuid:R"), None);
    for cut in 0..good.len() {
        if good.is_char_boundary(cut) {
            assert_eq!(
                read_receive_response(&good[..cut], "uuid:R"),
                None,
                "cut at {cut}"
            );
        }
    }
    assert_eq!(
        read_receive_response(&good.replace("s:Envelope", "s:Other"), "uuid:R"),
        None
    );
    // A byte-order mark, as the tree takes it.
    let bom = format!("\u{feff}{good}");
    assert_eq!(
        read_receive_response(&bom, "uuid:R"),
        receive_by_tree(&bom, "uuid:R")
    );
    assert!(read_receive_response(&bom, "uuid:R").is_some());
}
