//! Known answers for encryption at source: the cose-wg/Examples fixtures in
//! `tests/fixtures/cose/` (source and commit in its README) and RFC 3394 §4.1.
//!
//! - `aes-gcm-enc-01`: COSE_Encrypt0, A128GCM: we decrypt it and, with its key and IV, produce
//!   the same bytes; `aes-gcm-enc-04` (tag changed) is refused.
//! - `p256-wrap-128-01`: COSE_Encrypt, A128GCM content, ECDH-ES + A128KW recipient on P-256: we
//!   decrypt it with the recipient's key, match its intermediates (KDF context, shared secret,
//!   KEK) and, with its CEK, IV and ephemeral key, produce the same ciphertext, ephemeral key
//!   and wrapped key.

use std::path::Path;

use base64::Engine;
use chipledger_device::seal::{
    EpochKey, SealError, ecdh_es_a128kw_kek, iv_for, kdf_context, open_cose_encrypt_ecdh_es_a128kw, open_encrypt0,
    seal_cose_encrypt_ecdh_es_a128kw, seal_encrypt0,
};
use coset::{CoseEncrypt, Label, TaggedCborSerializable};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cose")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn b64url(s: &Value) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.as_str().unwrap())
        .unwrap()
}

fn hex_of(s: &Value) -> Vec<u8> {
    hex::decode(s.as_str().unwrap()).unwrap()
}

fn key16(bytes: &[u8]) -> EpochKey {
    EpochKey::from_bytes(bytes.try_into().unwrap())
}

#[test]
fn aes_gcm_enc_01_decrypts_and_reproduces() {
    let ex = fixture("aes-gcm-enc-01.json");
    let key = key16(&b64url(&ex["input"]["encrypted"]["recipients"][0]["key"]["k"]));
    let cbor = hex_of(&ex["output"]["cbor"]);
    let plaintext = ex["input"]["plaintext"].as_str().unwrap().as_bytes();
    assert_eq!(open_encrypt0(&cbor, &key, &[]).unwrap(), plaintext);

    let iv: [u8; 12] = hex_of(&ex["input"]["rng_stream"][0]).try_into().unwrap();
    assert_eq!(seal_encrypt0(&key, &iv, plaintext, &[]).unwrap(), cbor);
    // Untagged form is accepted too; a wrong key or external AAD is not.
    assert_eq!(open_encrypt0(&cbor[1..], &key, &[]).unwrap(), plaintext);
    assert_eq!(
        open_encrypt0(&cbor, &key16(&[0; 16]), &[]),
        Err(SealError::DecryptFailed)
    );
    assert_eq!(open_encrypt0(&cbor, &key, b"x"), Err(SealError::DecryptFailed));
}

#[test]
fn aes_gcm_enc_04_with_a_changed_tag_is_refused() {
    let ex = fixture("aes-gcm-enc-04.json");
    assert_eq!(ex["input"]["failures"]["ChangeTag"], 1);
    let key = key16(&b64url(&ex["input"]["encrypted"]["recipients"][0]["key"]["k"]));
    let cbor = hex_of(&ex["output"]["cbor"]);
    assert_eq!(open_encrypt0(&cbor, &key, &[]), Err(SealError::DecryptFailed));
}

struct WrapExample {
    owner_secret: p256::SecretKey,
    cbor: Vec<u8>,
    plaintext: Vec<u8>,
    cek: Vec<u8>,
    rng: Vec<Vec<u8>>,
    inter: Value,
}

fn wrap_example() -> WrapExample {
    let ex = fixture("p256-wrap-128-01.json");
    let jwk = &ex["input"]["enveloped"]["recipients"][0]["key"];
    WrapExample {
        owner_secret: p256::SecretKey::from_slice(&b64url(&jwk["d"])).unwrap(),
        cbor: hex_of(&ex["output"]["cbor"]),
        plaintext: ex["input"]["plaintext"].as_str().unwrap().as_bytes().to_vec(),
        cek: hex_of(&ex["intermediates"]["CEK_hex"]),
        rng: ex["input"]["rng_stream"]
            .as_array()
            .unwrap()
            .iter()
            .map(hex_of)
            .collect(),
        inter: ex["intermediates"]["recipients"][0].clone(),
    }
}

#[test]
fn p256_wrap_128_01_decrypts() {
    let ex = wrap_example();
    let (cek, plaintext) = open_cose_encrypt_ecdh_es_a128kw(&ex.cbor, &ex.owner_secret, &[]).unwrap();
    assert_eq!(cek.as_bytes()[..], ex.cek[..]);
    assert_eq!(plaintext, ex.plaintext);

    let other = p256::SecretKey::from_slice(&[7; 32]).unwrap();
    let err = open_cose_encrypt_ecdh_es_a128kw(&ex.cbor, &other, &[]).unwrap_err();
    assert_eq!(err, SealError::UnwrapFailed);
}

#[test]
fn p256_wrap_128_01_intermediates_match() {
    let ex = wrap_example();
    let recipient_protected = hex::decode("a101381c").unwrap(); // {1: -29}
    assert_eq!(kdf_context(&recipient_protected), hex_of(&ex.inter["Context_hex"]));
    let kek = ecdh_es_a128kw_kek(&hex_of(&ex.inter["Secret_hex"]), &recipient_protected);
    assert_eq!(kek.to_vec(), hex_of(&ex.inter["KEK_hex"]));
}

#[test]
fn p256_wrap_128_01_is_reproduced_from_its_random_stream() {
    let ex = wrap_example();
    // rng_stream: CEK, IV, ephemeral secret.
    let cek = key16(&ex.rng[0]);
    let iv: [u8; 12] = ex.rng[1].clone().try_into().unwrap();
    let ephemeral = p256::NonZeroScalar::try_from(&ex.rng[2][..]).unwrap();
    let owner = ex.owner_secret.public_key();
    let ours = seal_cose_encrypt_ecdh_es_a128kw(&cek, &iv, &ex.plaintext, &owner, &ephemeral).unwrap();

    let (ours, theirs) = (
        CoseEncrypt::from_tagged_slice(&ours).unwrap(),
        CoseEncrypt::from_tagged_slice(&ex.cbor).unwrap(),
    );
    assert_eq!(ours.protected.header, theirs.protected.header);
    assert_eq!(ours.unprotected, theirs.unprotected);
    assert_eq!(ours.ciphertext, theirs.ciphertext, "content ciphertext");
    let (r_ours, r_theirs) = (&ours.recipients[0], &theirs.recipients[0]);
    assert_eq!(r_ours.protected.header, r_theirs.protected.header);
    assert_eq!(r_ours.ciphertext, r_theirs.ciphertext, "wrapped CEK");
    let epk = |r: &coset::CoseRecipient| r.unprotected.rest.iter().find(|(l, _)| *l == Label::Int(-1)).cloned();
    assert_eq!(epk(r_ours), epk(r_theirs), "ephemeral public key");
    // The only difference: the recipient `kid` (the example's is a name, ours the key id).
    assert_ne!(r_ours.unprotected.key_id, r_theirs.unprotected.key_id);

    // And our own message opens with the same owner key.
    let again = seal_cose_encrypt_ecdh_es_a128kw(&cek, &iv_for(0), b"x", &owner, &ephemeral).unwrap();
    let (k, pt) = open_cose_encrypt_ecdh_es_a128kw(&again, &ex.owner_secret, &[]).unwrap();
    assert_eq!((k, pt), (cek, b"x".to_vec()));
}

#[test]
fn rfc3394_key_wrap_vectors() {
    use aes_kw::{KeyInit, KwAes128};
    // RFC 3394 §4.1: 128 bits of key data with a 128-bit KEK.
    let kek: [u8; 16] = hex::decode("000102030405060708090a0b0c0d0e0f")
        .unwrap()
        .try_into()
        .unwrap();
    let key = hex::decode("00112233445566778899aabbccddeeff").unwrap();
    let wrapped = hex::decode("1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5").unwrap();
    let kw = KwAes128::new(&kek.into());
    let mut buf = [0u8; 24];
    assert_eq!(kw.wrap_key(&key, &mut buf).unwrap(), &wrapped[..]);
    let mut out = [0u8; 16];
    assert_eq!(kw.unwrap_key(&wrapped, &mut out).unwrap(), &key[..]);
    let mut bad = wrapped.clone();
    bad[0] ^= 1;
    assert!(kw.unwrap_key(&bad, &mut out).is_err());
}
