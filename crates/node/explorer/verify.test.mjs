// Known-answer tests of verify.js under Node's test runner (`node --test verify.test.mjs`), with
// Node's WebCrypto standing in for the browser's. Run by crates/node/tests/explorer_verify_js.rs,
// which also hands over, in the file named by CHIPLEDGER_VERIFY_FIXTURE, answers of a real node
// (a one-validator network with a final checkpoint) and a 4-validator checkpoint signed in Rust.
//
// Static vectors, each with its source:
// - golang/mod sumdb/note/note_test.go (commit fe2ec04f7c3c3aa6fad97631aafcff6e49e2d1db,
//   BSD-3-Clause) and the C2SP signed-note.md example: as in crates/types/tests/note_vectors.rs;
// - crates/types/tests/fixtures/notes/cosigned-checkpoint.txt (frozen, made by chipledger-types);
// - transparency-dev/merkle inclusion probes and constants, transcribed in
//   crates/types/tests/fixtures/transparency-dev/ (see its README.md).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { webcrypto } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";

const here = dirname(fileURLToPath(import.meta.url));
const typesFixtures = join(here, "../../types/tests/fixtures");

// Node 18 has WebCrypto as `crypto.webcrypto` but not always as a global.
if (!globalThis.crypto || !globalThis.crypto.subtle) {
  Object.defineProperty(globalThis, "crypto", { value: webcrypto, configurable: true });
}
vm.runInThisContext(readFileSync(join(here, "verify.js"), "utf8"), { filename: "verify.js" });
const V = globalThis.chipledgerVerify;

const hex = (s) => V.hexToBytes(s);

// ------------------------------------------------------------------------------------------------
// Signed notes.

const PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG =
  "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG =
  "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";
const goNote = (sigs) => `${GO_TEXT}\n${sigs}`;

test("key IDs and verifier keys (golang/mod sumdb/note)", async () => {
  const peter = await V.parseVerifierKey(PETER_VKEY);
  assert.equal(peter.keyId, 0xc74f20a3);
  assert.equal(peter.sigType, 0x01);
  assert.equal(await V.keyId(peter.name, 0x01, peter.publicKey), 0xc74f20a3);
  const enoch = await V.parseVerifierKey(ENOCH_VKEY);
  assert.equal(enoch.keyId, 0xaf0cfe78);
  // A wrong key ID, a bad type, a short key and a mangled name are refused.
  for (const bad of [
    "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",
    "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "PeterNeumann+c74f20a3",
  ]) {
    await assert.rejects(V.parseVerifierKey(bad), /malformed verifier key/, bad);
  }
});

test("opening notes (golang/mod sumdb/note)", async () => {
  const peter = await V.parseVerifierKey(PETER_VKEY);
  const enoch = await V.parseVerifierKey(ENOCH_VKEY);
  const both = goNote(PETER_SIG + ENOCH_SIG);
  let n = await V.openNote(both, [peter]);
  assert.equal(n.text, GO_TEXT);
  assert.deepEqual([n.verified.length, n.unknownSignatures], [1, 1]);
  assert.deepEqual(n.verified[0], { name: "PeterNeumann", keyId: 0xc74f20a3 });
  n = await V.openNote(both, [peter, enoch]);
  assert.deepEqual([n.verified.length, n.unknownSignatures], [2, 0]);
  await assert.rejects(V.openNote(both, []), /no valid signature from a known key/);
  await assert.rejects(V.openNote(goNote(PETER_SIG.repeat(101)), [peter]), /more than 100 signature lines/);
  const bad = goNote(`${PETER_SIG.slice(0, 60)}ABCD${PETER_SIG.slice(60)}`);
  await assert.rejects(V.openNote(bad, [peter]), /invalid signature from known key PeterNeumann\+c74f20a3/);
  // Repeats count once; a corrupted line under an unknown key is no error.
  const enochAbcd = `${ENOCH_SIG.slice(0, 60)}ABCD${ENOCH_SIG.slice(60)}`;
  n = await V.openNote(goNote(PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enochAbcd), [peter]);
  assert.deepEqual([n.verified.length, n.unknownSignatures], [1, 3]);
});

test("malformed notes are refused (golang/mod sumdb/note)", async () => {
  const peter = await V.parseVerifierKey(PETER_VKEY);
  for (const msg of [
    GO_TEXT,
    `${GO_TEXT}\n`,
    `${GO_TEXT}\n${PETER_SIG.slice(0, -1)}`,
    `\x01${GO_TEXT}\n${PETER_SIG}`,
    `${GO_TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=`,
    `${GO_TEXT}\n${PETER_SIG}Unexpected line.\n`,
    `${GO_TEXT}\n- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`,
  ]) {
    await assert.rejects(V.openNote(msg, [peter]), /malformed note/, JSON.stringify(msg));
  }
});

test("C2SP signed-note example", async () => {
  const key = await V.parseVerifierKey("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k");
  const msg =
    "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
  const n = await V.openNote(msg, [key]);
  assert.equal(n.text, "This is an example message.\n");
  // The opening example of signed-note.md keeps its inner blank line in the text.
  const poem =
    "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";
  const parsed = V.parseNote(poem);
  assert.ok(parsed.text.endsWith(":\n\ned è subito sera.\n"));
  assert.equal(parsed.signatures[0].name, "quasimodo.example/salvatore");
});

test("frozen cosigned checkpoint: Ed25519 and cosignature/v1 lines, body parsed", async () => {
  const note = readFileSync(join(typesFixtures, "notes/cosigned-checkpoint.txt"), "utf8");
  const parsed = V.parseNote(note);
  assert.equal(parsed.signatures.length, 2);
  // The fixture names its keys by seed (32 × 0x01: Ed25519 type 0x01; 32 × 0x02: cosignature/v1
  // type 0x04); WebCrypto derives the public keys (PKCS#8 import, JWK export).
  const publicKeyOf = async (seedByte) => {
    const pkcs8 = V.hexToBytes("302e020100300506032b657004220420" + seedByte.repeat(32));
    const key = await webcrypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
    return Buffer.from((await webcrypto.subtle.exportKey("jwk", key)).x, "base64url");
  };
  const vkeyOf = async (name, type, seedByte) => {
    const pub = await publicKeyOf(seedByte);
    const id = (await V.keyId(name, type, pub)).toString(16).padStart(8, "0");
    return V.parseVerifierKey(`${name}+${id}+${Buffer.concat([Buffer.of(type), pub]).toString("base64")}`);
  };
  const log = await vkeyOf("example.com/chipledger", 0x01, "01");
  const witness = await vkeyOf("witness.example/w1", 0x04, "02");
  const opened = await V.openNote(note, [log, witness]);
  assert.deepEqual(opened.verified.map((v) => v.name), ["example.com/chipledger", "witness.example/w1"]);
  // The cosignature signs "cosignature/v1\ntime <t>\n" ‖ text: a flipped signature byte is caught.
  const raw = V.base64ToBytes(note.split("\n").at(-2).split(" ")[2]);
  raw[20] ^= 1;
  const lines = note.split("\n");
  lines[lines.length - 2] = `— witness.example/w1 ${Buffer.from(raw).toString("base64")}`;
  await assert.rejects(V.openNote(lines.join("\n"), [log, witness]), /invalid signature from known key witness/);
  const cp = V.parseCheckpoint(parsed.text);
  assert.equal(cp.origin, "example.com/chipledger");
  assert.equal(cp.size, 5n);
  // Root of the transparency-dev 5-leaf tree (constants.txt `root 5`).
  assert.equal(V.bytesToHex(cp.root), "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4");
});

test("checkpoint bodies: malformed ones are refused", () => {
  const root = "Tju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNQ=";
  assert.deepEqual(V.parseCheckpoint(`o\n5\n${root}\next one\n`).extensions, ["ext one"]);
  for (const [text, why] of [
    [`o\n5\n${root}`, /end with a newline/],
    [`o\n5\n`, /origin, size and root/],
    [`\n5\n${root}\n`, /origin line is empty/],
    [`o\n05\n${root}\n`, /not a decimal u64/],
    [`o\n18446744073709551616\n${root}\n`, /not a decimal u64/],
    [`o\n5\nTju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNR=\n`, /canonical base64/],
    [`o\n5\n${root}\n\n`, /non-empty/],
    [`o\n5\n${root}\n${"e\n".repeat(17)}`, /more than 16 extension lines/],
  ]) {
    assert.throws(() => V.parseCheckpoint(text), why, JSON.stringify(text));
  }
});

// ------------------------------------------------------------------------------------------------
// RFC 9162 Merkle proofs.

test("transparency-dev constants: leaf and node hashes", async () => {
  const lines = readFileSync(join(typesFixtures, "transparency-dev/constants.txt"), "utf8")
    .split("\n")
    .filter((l) => l && !l.startsWith("#"));
  const leaves = lines.filter((l) => l.startsWith("leaf ")).map((l) => l.split(" ")[2]);
  const nodes = lines.filter((l) => l.startsWith("node 0 ")).map((l) => l.split(" ")[3]);
  assert.equal(leaves.length, 8);
  for (let i = 0; i < 8; i++) {
    const input = leaves[i] === "-" ? new Uint8Array() : hex(leaves[i]);
    assert.equal(V.bytesToHex(await V.hashLeaf(input)), nodes[i], `leaf ${i}`);
  }
  const level1 = lines.find((l) => l.startsWith("node 1 0 ")).split(" ")[3];
  assert.equal(V.bytesToHex(await V.hashChildren(hex(nodes[0]), hex(nodes[1]))), level1);
});

test("transparency-dev inclusion probes (98)", async () => {
  const probes = readFileSync(join(typesFixtures, "transparency-dev/inclusion.txt"), "utf8")
    .split("\n")
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => l.split(" "));
  assert.equal(probes.length, 98);
  const bytes = (s) => (s === "-" ? new Uint8Array() : hex(s));
  let ok = 0;
  for (const [name, index, size, leaf, root, proof, expect] of probes) {
    const path = proof === "none" ? [] : proof.split(",").map(bytes);
    const result = await V.verifyInclusion(bytes(leaf), BigInt(index), BigInt(size), path, bytes(root)).then(
      () => "ok",
      () => "err",
    );
    assert.equal(result, expect, name);
    if (result === "ok") ok += 1;
  }
  assert.ok(ok >= 4, `only ${ok} happy paths`);
});

test("quorum is 2f+1 of n = 3f+1", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 7, 10].map(V.quorumOf), [1, 2, 3, 3, 4, 5, 7]);
});

test("the tampered-proof switch reads the query and the #route's query", () => {
  assert.equal(V.wantsTamperedProof({ search: "?proof=tampered", hash: "" }), true);
  assert.equal(V.wantsTamperedProof({ search: "", hash: "#/tx/ab?proof=tampered" }), true);
  assert.equal(V.wantsTamperedProof({ search: "", hash: "#/tx/ab" }), false);
});

test("status sentences", () => {
  assert.equal(
    V.renderStatus({ ok: true, index: 0, size: 12, signers: 3, n: 4, quorum: 3 }),
    "verified against checkpoint 12 signed by 3 of 4 validators",
  );
  assert.equal(V.renderStatus({ ok: false, error: "boom" }), "verification failed: boom");
});

// ------------------------------------------------------------------------------------------------
// Vectors made by Rust (crates/node/tests/explorer_verify_js.rs).

const fixturePath = process.env.CHIPLEDGER_VERIFY_FIXTURE;
const fixture = fixturePath ? JSON.parse(readFileSync(fixturePath, "utf8")) : null;
const withFixture = { skip: fixture ? false : "CHIPLEDGER_VERIFY_FIXTURE is not set (run via cargo test)" };

test("Rust-signed 4-validator checkpoint: quorum counted, key IDs match", withFixture, async () => {
  const f = fixture.quorum;
  const keys = [];
  for (const k of f.verifier_keys) keys.push(await V.parseVerifierKey(k));
  for (let i = 0; i < keys.length; i++) assert.equal(keys[i].keyId, f.key_ids[i]);
  const good = await V.checkCheckpoint(f.note_3_of_4, keys, 4, f.origin);
  assert.deepEqual([good.signers, good.quorum, good.checkpoint.size], [3, 3, BigInt(f.size)]);
  assert.equal(V.bytesToHex(good.checkpoint.root), f.root);
  await assert.rejects(V.checkCheckpoint(f.note_2_of_4, keys, 4, f.origin), /only 2 valid validator signatures; 3 needed/);
  await assert.rejects(V.checkCheckpoint(f.note_3_of_4, keys, 4, "other.example/log"), /origin/);
  await assert.rejects(V.checkCheckpoint(f.note_bad_sig, keys, 4, f.origin), /invalid signature from known key/);
});

test("Rust inclusion proofs verify; tampered ones do not", withFixture, async () => {
  for (const p of fixture.inclusion) {
    const path = p.hashes.map(hex);
    await V.verifyInclusion(await V.hashLeaf(hex(p.leaf_input)), p.index, p.size, path, hex(p.root));
    if (path.length > 0) {
      path[0][0] ^= 0xff;
      await assert.rejects(V.verifyInclusion(await V.hashLeaf(hex(p.leaf_input)), p.index, p.size, path, hex(p.root)));
    }
  }
});

/** A fetch that answers from the node's recorded responses. */
function recordedFetch(responses) {
  return async (url) => {
    const body = responses[url];
    if (body === undefined) return { ok: false, status: 404, json: async () => ({}) };
    return { ok: true, status: 200, json: async () => body };
  };
}

test("verifyTx against a real node's answers", withFixture, async () => {
  const f = fixture.node;
  const fetch = recordedFetch(f.responses);
  const ok = await V.verifyTx(f.tx_hash, { fetch, tampered: false });
  assert.deepEqual(
    { ok: ok.ok, index: ok.index, size: ok.size, signers: ok.signers, n: ok.n, quorum: ok.quorum },
    { ok: true, index: f.leaf_index, size: f.log_size, signers: 1, n: 1, quorum: 1 },
    JSON.stringify(ok),
  );
  assert.equal(V.renderStatus(ok), `verified against checkpoint ${f.log_size} signed by 1 of 1 validators`);

  const bad = await V.verifyTx(f.tx_hash, { fetch, tampered: true });
  assert.equal(bad.ok, false);
  assert.equal(V.renderStatus(bad), "verification failed: inclusion proof does not lead to the checkpoint's root");

  // Bytes that do not hash to the transaction, and an unknown transaction, fail clearly.
  const swapped = { ...f.responses, [`/v1/tx/${f.tx_hash}/raw`]: { ...f.responses[`/v1/tx/${f.tx_hash}/raw`], cbor: "00" } };
  const r = await V.verifyTx(f.tx_hash, { fetch: recordedFetch(swapped), tampered: false });
  assert.match(r.error, /do not hash to/);
  const unknown = await V.verifyTx("00".repeat(32), { fetch, tampered: false });
  assert.match(unknown.error, /answered 404/);
  assert.match((await V.verifyTx("xyz", { fetch })).error, /64 hex characters/);
});

test("Rust sparse-Merkle state proofs verify under a Rust-signed state line; altered ones do not", withFixture, async () => {
  const f = fixture.state;
  const all = [...f.present, ...f.absent];
  const proofs = { checkpoint: f.checkpoint, state_height: f.state_height, state_root: f.state_root, values: all };
  const keys = all.map((p) => p.key);
  const res = await V.verifyStateProofs(proofs, keys, f.validators, "state");
  assert.deepEqual([res.signers, res.n, res.quorum, res.stateHeight], [3, 4, 3, BigInt(f.state_height)]);
  assert.deepEqual(
    res.values.map((v) => (v === null ? null : V.bytesToHex(v))),
    all.map((p) => p.value),
  );
  const vkeys = [];
  for (const v of f.validators) vkeys.push(await V.parseVerifierKey(v.note_verifier_key));
  const cp = V.parseCheckpoint((await V.openNote(f.checkpoint, vkeys)).text);
  assert.equal(V.bytesToHex(V.stateLine(cp).root), f.state_root);
  const root = hex(f.state_root);

  // A value the node altered, a proof for another key, a claimed value for an absent key, an
  // absent key's proof reused for a present one, a flipped sibling: all refused.
  const p0 = f.present[0];
  const flip = (h) => (parseInt(h.slice(0, 2), 16) ^ 0xff).toString(16).padStart(2, "0") + h.slice(2);
  await assert.rejects(V.verifyStateValue(root, p0.key, { ...p0, value: flip(p0.value) }), /does not lead to the state root/);
  await assert.rejects(V.verifyStateValue(root, f.present[1].key, p0), /is for state key/);
  const a0 = f.absent.find((p) => p.leaf !== null);
  await assert.rejects(V.verifyStateValue(root, a0.key, { ...a0, value: "00" }), /does not lead to the state root/);
  await assert.rejects(V.verifyStateValue(root, f.present[1].key, { ...p0, key: f.present[1].key, value: null }));
  if (p0.siblings.length > 0) {
    const siblings = [...p0.siblings];
    siblings[siblings.length - 1] = flip(siblings[siblings.length - 1]);
    await assert.rejects(V.verifyStateValue(root, p0.key, { ...p0, siblings }), /does not lead to the state root/);
  }
  await assert.rejects(V.verifyStateValue(root, p0.key, { ...p0, siblings: Array(257).fill("00".repeat(32)) }), /more than 256 siblings/);

  // Proofs against another root than the checkpoint's, or in another order than asked.
  await assert.rejects(V.verifyStateProofs({ ...proofs, state_root: "11".repeat(32) }, keys, f.validators, "state"), /not against the state root/);
  await assert.rejects(V.verifyStateProofs(proofs, [...keys].reverse(), f.validators, "state"), /is for state key/);
  await assert.rejects(V.verifyStateProofs(proofs, keys, f.validators, "other"), /origin/);
});

test("the CBOR decoder: definite items, limits, trailing bytes", () => {
  assert.deepEqual(V.decodeCbor(hex("83010203")), [1, 2, 3]);
  assert.equal(V.decodeCbor(hex("6449455446")), "IETF");
  assert.deepEqual(V.decodeCbor(hex("4401020304")), Uint8Array.of(1, 2, 3, 4));
  assert.equal(V.decodeCbor(hex("f6")), null);
  assert.equal(V.decodeCbor(hex("1b000000e8d4a51000")), 1000000000000);
  assert.throws(() => V.decodeCbor(hex("8301")), /truncated/);
  assert.throws(() => V.decodeCbor(hex("0101")), /trailing bytes/);
  assert.throws(() => V.decodeCbor(hex("9f01ff")), /unsupported/);
  assert.throws(() => V.decodeCbor(hex("81".repeat(30) + "01")), /too deep/);
  assert.throws(() => V.decodeCbor(hex("62c328")), /./); // invalid UTF-8 text
});
