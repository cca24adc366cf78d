use super::*;

/// Seeded prover randomness: every proof in these tests can be replayed from its seed.
fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn blinding(n: u8) -> Blinding {
    Blinding::derive(&[n; 32], b"test reading").unwrap()
}

fn prove(value: u64, r: &Blinding, min: u64, max: u64, bits: u8) -> Result<Vec<u8>, ZkError> {
    prove_bounds_with_rng(value, r, min, max, bits, &mut rng(7))
}

#[test]
fn commitments_of_small_values_with_zero_blinding_are_rfc9496_generator_multiples() {
    // RFC 9496 Appendix A.1 (ristretto255 "multiples of the generator"): encodings of 0..=4 · B.
    // With r = 0, commit(v) = v·B, so this pins B to the ristretto255 generator.
    let multiples = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76",
        "6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919",
        "94741f5d5d52755ece4f23f044ee27d5d1ea1e2bd196b462166b16152a9d0259",
        "da80862773358b466ffadfe0b3293ab3d9fd53c5ea6c955358f568322daf6a57",
    ];
    let zero = Blinding::from_bytes(&[0; 32]).unwrap();
    for (v, want) in multiples.iter().enumerate() {
        assert_eq!(commit(v as u64, &zero).to_string(), *want, "{v}·B");
    }
}

#[test]
fn blinding_generator_is_the_sha3_512_hash_to_group_of_the_base_point() {
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_COMPRESSED;
    // B̃ = ristretto255 hash-to-group (RFC 9496 §4.3.4, one-way map of 64 uniform bytes) of
    // SHA3-512(encoding of B): the bulletproofs crate's documented default, frozen here so a
    // dependency change that moved it would show. Value computed with bulletproofs 5.0.0.
    let gens = pedersen_gens();
    assert_eq!(gens.B.compress(), RISTRETTO_BASEPOINT_COMPRESSED);
    assert_eq!(
        hex::encode(gens.B_blinding.compress().as_bytes()),
        "8c9240b456a9e6dc65c377a1048d745f94a08cdb7f44cbcd7b46f34048871134"
    );
    let one = Blinding::from_bytes(&Scalar::ONE.to_bytes()).unwrap();
    assert_eq!(commit(0, &one).0, gens.B_blinding.compress().to_bytes());
}

#[test]
fn proof_lengths_are_fixed_per_bit_width() {
    let want = [(8, 544), (16, 608), (32, 672), (64, 736)];
    for (bits, len) in want {
        assert_eq!(proof_len(bits), len, "{bits} bits");
        let max = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        assert_eq!(prove(3, &blinding(1), 0, max, bits).unwrap().len(), len);
    }
    assert_eq!(MAX_PROOF_BYTES, 736);
}

#[test]
fn valid_proofs_are_accepted() {
    // (value, min, max, bits): interior, both edges, a point range, the full u64 range.
    let cases = [
        (42, 0, 100, 8),
        (0, 0, 100, 8),
        (100, 0, 100, 8),
        (7, 7, 7, 8),
        (1_000, 500, 66_035, 16),
        (20_000_000, 10_000_000, 4_000_000_000, 32),
        (u64::MAX, 0, u64::MAX, 64),
        (0, 0, u64::MAX, 64),
        (u64::MAX - 5, u64::MAX - 200, u64::MAX, 8),
    ];
    for (i, (value, min, max, bits)) in cases.into_iter().enumerate() {
        let r = blinding(i as u8);
        let proof = prove(value, &r, min, max, bits).unwrap();
        let c = commit(value, &r);
        assert_eq!(verify_bounds(&c, min, max, bits, &proof), Ok(()), "case {i}");
    }
}

#[test]
fn prover_refuses_a_value_outside_the_bounds() {
    let r = blinding(1);
    assert_eq!(prove(9, &r, 10, 20, 8), Err(ZkError::OutOfBounds { min: 10, max: 20 }));
    assert_eq!(prove(21, &r, 10, 20, 8), Err(ZkError::OutOfBounds { min: 10, max: 20 }));
    assert_eq!(
        prove(0, &r, 1, u64::MAX, 64),
        Err(ZkError::OutOfBounds { min: 1, max: u64::MAX })
    );
}

#[test]
fn a_proof_for_other_bounds_does_not_verify() {
    // An emissions reading of 25 is within [20, 30]; its proof must not pass as [10, 20]
    // (the value is out of those bounds) nor as any other statement.
    let r = blinding(2);
    let c = commit(25, &r);
    let proof = prove(25, &r, 20, 30, 8).unwrap();
    assert_eq!(verify_bounds(&c, 20, 30, 8, &proof), Ok(()));
    for (min, max) in [(10, 20), (20, 29), (21, 30), (0, 30), (20, 31), (25, 25)] {
        assert_eq!(
            verify_bounds(&c, min, max, 8, &proof),
            Err(ZkError::VerificationFailed),
            "[{min}, {max}]"
        );
    }
    // Same bounds, other bit width: the length no longer fits.
    assert_eq!(
        verify_bounds(&c, 20, 30, 16, &proof),
        Err(ZkError::Malformed("proof length for this bit width"))
    );
}

#[test]
fn a_proof_for_another_commitment_does_not_verify() {
    let proof = prove(25, &blinding(3), 20, 30, 8).unwrap();
    // Same value, other blinding; other value, same blinding.
    for c in [commit(25, &blinding(4)), commit(26, &blinding(3))] {
        assert_eq!(verify_bounds(&c, 20, 30, 8, &proof), Err(ZkError::VerificationFailed));
    }
}

#[test]
fn swapped_and_invalid_bounds_are_invalid_statements() {
    let r = blinding(5);
    let c = commit(15, &r);
    let proof = prove(15, &r, 10, 20, 8).unwrap();
    assert!(matches!(
        verify_bounds(&c, 20, 10, 8, &proof),
        Err(ZkError::InvalidStatement(_))
    ));
    for (min, max, bits) in [
        (20, 10, 8),
        (0, 256, 8),
        (0, 1 << 16, 16),
        (0, 1 << 32, 32),
        (0, 1, 7),
        (0, 1, 0),
        (0, 1, 128),
    ] {
        let err = Bounds::new(min, max, bits).unwrap_err();
        assert_eq!(err.code(), "invalid_statement", "[{min}, {max}] in {bits} bits");
        assert_eq!(prove(min, &r, min, max, bits).unwrap_err(), err);
    }
    assert!(Bounds::new(0, 255, 8).is_ok());
    assert!(Bounds::new(u64::MAX - 255, u64::MAX, 8).is_ok());
}

#[test]
fn every_flipped_byte_is_rejected() {
    let r = blinding(6);
    let c = commit(1234, &r);
    let proof = prove(1234, &r, 1000, 2000, 16).unwrap();
    for i in 0..proof.len() {
        let mut bad = proof.clone();
        bad[i] ^= 0x01;
        let err = verify_bounds(&c, 1000, 2000, 16, &bad).unwrap_err();
        assert!(
            matches!(err, ZkError::VerificationFailed | ZkError::Malformed(_)),
            "byte {i}: {err:?}"
        );
    }
}

#[test]
fn truncated_extended_and_garbage_proofs_are_malformed() {
    let r = blinding(7);
    let c = commit(50, &r);
    let proof = prove(50, &r, 0, 100, 8).unwrap();
    for cut in 0..proof.len() {
        assert!(
            matches!(verify_bounds(&c, 0, 100, 8, &proof[..cut]), Err(ZkError::Malformed(_))),
            "cut {cut}"
        );
    }
    let mut longer = proof.clone();
    longer.extend_from_slice(&[0; 32]);
    assert!(matches!(
        verify_bounds(&c, 0, 100, 8, &longer),
        Err(ZkError::Malformed(_))
    ));
    // A non-canonical scalar (t_x = 2^256 - 1 > ℓ) is a format error, not a panic.
    let mut non_canonical = proof.clone();
    non_canonical[4 * 32..5 * 32].fill(0xff);
    assert_eq!(
        verify_bounds(&c, 0, 100, 8, &non_canonical),
        Err(ZkError::Malformed("proof encoding"))
    );
    // All-0xff points and scalars; all zeros.
    for fill in [0x00, 0xff] {
        let err = verify_bounds(&c, 0, 100, 8, &vec![fill; proof.len()]).unwrap_err();
        assert!(
            matches!(err, ZkError::Malformed(_) | ZkError::VerificationFailed),
            "{fill:#x}: {err:?}"
        );
    }
}

#[test]
fn a_commitment_that_is_not_a_point_is_malformed() {
    let proof = prove(50, &blinding(8), 0, 100, 8).unwrap();
    let bad = Commitment([0xff; 32]);
    assert!(matches!(
        verify_bounds(&bad, 0, 100, 8, &proof),
        Err(ZkError::Malformed(_))
    ));
    assert!(Commitment::from_bytes(&[0xff; 32]).is_err());
    assert!(Commitment::from_bytes(&[0; 31]).is_err());
    let good = commit(50, &blinding(8));
    assert_eq!(Commitment::from_bytes(&good.0), Ok(good));
}

#[test]
fn blinding_derivation_is_deterministic_context_separated_and_refuses_short_secrets() {
    let secret = [0x42; 32];
    let a = Blinding::derive(&secret, b"dev/temp/1/co2").unwrap();
    assert_eq!(a, Blinding::derive(&secret, b"dev/temp/1/co2").unwrap());
    assert_ne!(a, Blinding::derive(&secret, b"dev/temp/2/co2").unwrap());
    assert_ne!(a, Blinding::derive(&[0x43; 32], b"dev/temp/1/co2").unwrap());
    assert_eq!(
        Blinding::derive(&[1; 15], b"x"),
        Err(ZkError::ShortSecret {
            len: 15,
            min: MIN_SECRET_BYTES
        })
    );
    // Known answer computed independently (Python hmac/hashlib: RFC 5869 HKDF-SHA256 with
    // salt BLINDING_SALT, ikm 32×0x42, info "dev/temp/1/co2", L = 64; the 64 bytes read
    // little-endian, reduced mod ℓ = 2^252 + 27742317777372353535851937790883648493).
    assert_eq!(
        hex::encode(a.to_bytes()),
        "116523233a1f9b634dc82b42696ef092ecbcc29a945bc3991a56bbcb4d629300"
    );
    assert_eq!(Blinding::from_bytes(&a.to_bytes()), Ok(a.clone()));
    assert!(Blinding::from_bytes(&[0xff; 32]).is_err(), "non-canonical");
    assert_eq!(format!("{a:?}"), "Blinding(<secret>)");
}

#[test]
fn commitments_hide_the_value_behind_the_blinding() {
    let (r1, r2) = (blinding(9), blinding(10));
    assert_ne!(commit(5, &r1), commit(5, &r2));
    assert_ne!(commit(5, &r1), commit(6, &r1));
    assert_eq!(commit(5, &r1), commit(5, &r1));
}

#[test]
fn verification_is_deterministic_and_proofs_replay_from_their_seed() {
    let r = blinding(11);
    let c = commit(77, &r);
    let p1 = prove(77, &r, 0, 1000, 16).unwrap();
    assert_eq!(p1, prove(77, &r, 0, 1000, 16).unwrap());
    let p2 = prove_bounds(77, &r, 0, 1000, 16).unwrap();
    assert_ne!(p1, p2, "OsRng proofs differ");
    for p in [&p1, &p2] {
        assert_eq!(verify_bounds(&c, 0, 1000, 16, p), Ok(()));
        assert_eq!(verify_bounds(&c, 0, 1000, 16, p), Ok(()));
    }
}

#[test]
fn error_codes_are_stable() {
    let cases = [
        (ZkError::InvalidStatement("x"), "invalid_statement"),
        (ZkError::OutOfBounds { min: 0, max: 1 }, "out_of_bounds"),
        (ZkError::ShortSecret { len: 0, min: 16 }, "short_secret"),
        (ZkError::Malformed("x"), "malformed"),
        (ZkError::VerificationFailed, "verification_failed"),
        (ZkError::Proving("x".into()), "proving"),
    ];
    for (e, code) in cases {
        assert_eq!(e.code(), code);
    }
}
