//! Encoding and decoding cost of the records on the hot path of every server.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use zk_jute::data::{Acl, Id, Stat};
use zk_jute::proto::{CreateRequest, GetDataResponse};
use zk_jute::{Perms, Record, from_bytes, to_bytes};

fn stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0001,
        mzxid: 0x1_0000_0f00,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_050_000,
        version: 12,
        cversion: 3,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 1024,
        num_children: 3,
        pzxid: 0x1_0000_0e00,
    }
}

fn get_data_response() -> GetDataResponse {
    let data: Vec<u8> = (0..1024_u32).map(|i| (i % 251) as u8).collect();
    GetDataResponse {
        data: Some(Bytes::from(data)),
        stat: stat(),
    }
}

fn create_request() -> CreateRequest {
    CreateRequest {
        path: "/services/payments/instances/member-".into(),
        data: Some(Bytes::from_static(&[7; 100])),
        acl: Some(vec![Acl {
            perms: Perms::ALL.0,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }]),
        flags: 3,
    }
}

fn bench_record<R: Record + Clone>(c: &mut Criterion, name: &str, record: R) {
    let encoded = to_bytes(&record);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    let mut out = BytesMut::with_capacity(encoded.len());
    group.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            black_box(&record).encode(&mut out);
            black_box(&out);
        })
    });
    group.bench_function("decode", |b| {
        b.iter(|| from_bytes::<R>(black_box(encoded.clone())))
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    bench_record(c, "GetDataResponse_1KiB", get_data_response());
    bench_record(c, "CreateRequest", create_request());
}

criterion_group!(benches, codec);
criterion_main!(benches);
