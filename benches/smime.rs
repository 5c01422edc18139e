//! Sign and verify a busta di trasporto carrying a 1 MB and a 30 MB attachment
//! (30 MB is the legal size limit of a PEC message).

#[path = "../tests/common/mod.rs"]
mod common;

use base64::Engine;
use common::TestProvider;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pecbox::pec::messages;
use pecbox::pec::original::{rewrite_message_id, OriginalHeaders};
use pecbox::pec::timestamp::PecTime;
use pecbox::smime::{verify_message, VerifyOptions};

fn original_with_attachment(size: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(payload);
    let mut body = String::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 512);
    body.push_str("From: alice@pec.example\r\nTo: bob@pec.other\r\nSubject: allegato\r\nMessage-ID: <b1@client>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nciao\r\n--b\r\nContent-Type: application/octet-stream; name=\"dati.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    for line in encoded.as_bytes().chunks(76) {
        body.push_str(std::str::from_utf8(line).unwrap());
        body.push_str("\r\n");
    }
    body.push_str("--b--\r\n");
    body.into_bytes()
}

fn bench(c: &mut Criterion) {
    let provider = TestProvider::new("Bench PEC", "pec.example");
    let options = VerifyOptions {
        anchors: vec![provider.ca.cert_der.clone()],
        at: None,
    };
    let mut group = c.benchmark_group("busta");
    group.sample_size(10);
    for (label, size) in [("1MB", 1 << 20), ("30MB", 30 << 20)] {
        let original = original_with_attachment(size);
        let headers = OriginalHeaders::parse(&original).unwrap();
        let certified = headers.certify("id@pec.example", |_| Default::default());
        let inner = rewrite_message_id(&original, "id@pec.example", headers.message_id.as_deref());
        let unsigned =
            messages::busta_trasporto(&provider.gestore, &certified, &inner, None, PecTime::now());
        group.throughput(Throughput::Bytes(unsigned.entity.len() as u64));
        group.bench_with_input(BenchmarkId::new("sign", label), &unsigned, |b, u| {
            b.iter(|| provider.sign(u))
        });
        let signed = provider.sign(&unsigned);
        group.bench_with_input(BenchmarkId::new("verify", label), &signed, |b, s| {
            b.iter(|| {
                let v = verify_message(s, &options).unwrap();
                assert!(v.is_valid());
            })
        });
    }
    group.finish();

    // The RSA-2048 signature alone, to set beside `openssl speed rsa2048`.
    let mut small = c.benchmark_group("rsa2048");
    small.bench_function("sign_detached_1KB", |b| {
        let content = vec![b'x'; 1024];
        let t = chrono::Utc::now();
        b.iter(|| provider.signer.sign_detached(&content, t).unwrap())
    });
    small.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
