// chipledger explorer: verification in the browser ("don't trust the server").
//
// Plain JS, no dependencies; attaches `window.chipledgerVerify` (or `globalThis.chipledgerVerify`
// outside a browser). Uses WebCrypto only: SHA-256 and Ed25519 (`crypto.subtle`, name "Ed25519").
//
// What it checks, mirroring the Rust `chipledger_types` crate:
// - C2SP signed notes (c2sp.org/signed-note) as `note.rs` parses them: text, blank line, lines
//   `— <name> <base64(key ID ‖ signature)>`; key IDs = SHA-256(name ‖ 0x0A ‖ type ‖ key)[:4];
//   verifier keys `name+hex8+base64(type ‖ key)` with type 0x01 (Ed25519) or 0x04
//   (tlog-cosignature/v1, message "cosignature/v1\ntime <t>\n" ‖ text).
// - C2SP tlog-checkpoint bodies as `checkpoint.rs` parses them: origin, decimal size, base64 root,
//   extension lines.
// - RFC 9162 §2.1.3.2 inclusion proofs: leaf = SHA-256(0x00 ‖ input), node = SHA-256(0x01 ‖ l ‖ r).
// - `verifyTx(hash)`: the transaction's bytes hash to `hash`, their leaf is in the log under the
//   proof's root, and that root and size are in a checkpoint signed by a quorum (2f+1 of n) of
//   the validators listed by `/v1/validators`.
(function (root) {
  "use strict";

  const SIG_TYPE_ED25519 = 0x01;
  const SIG_TYPE_COSIGNATURE_V1 = 0x04;
  const SIGNATURE_LINE_PREFIX = "\u2014 ";
  const COSIGNATURE_V1_HEADER = "cosignature/v1";
  const HASH_BYTES = 32;
  const ED25519_KEY_BYTES = 32;
  const ED25519_SIGNATURE_BYTES = 64;
  const KEY_ID_BYTES = 4;
  const TIMESTAMP_BYTES = 8;
  const MAX_COSIGNATURE_TIMESTAMP = (1n << 63n) - 1n;
  const MAX_U64 = (1n << 64n) - 1n;
  /** Limits of note.rs `NoteLimits::default()` and checkpoint.rs. */
  const NOTE_BYTES_MAX = 1 << 20;
  const SIGNATURES_MAX = 100;
  const MAX_CHECKPOINT_BYTES = 16 * 1024;
  const MAX_EXTENSION_LINES = 16;
  /** Origin of every chipledger log: `chipledger.example/<chain id>` (genesis.rs `log_origin`). */
  const ORIGIN_PREFIX = "chipledger.example/";
  /** State proofs (state_proof.rs): the checkpoint line prefix and the longest proof path. */
  const STATE_EXTENSION_PREFIX = "chipledger-state";
  const MAX_PROOF_SIBLINGS = 256;
  /** How often `verifyDevice` asks again while the checkpoint lags the tip. */
  const DEVICE_PROOF_TRIES = 8;
  /** Limits of the CBOR decoder. */
  const MAX_CBOR_DEPTH = 24;
  const MAX_CBOR_ITEMS = 100000;

  const utf8 = new TextEncoder();

  function fail(message) {
    throw new Error(message);
  }

  function subtle() {
    const c = root.crypto;
    if (!c || !c.subtle) fail("WebCrypto is not available here (a secure context is needed)");
    return c.subtle;
  }

  // ---------------------------------------------------------------------------------------------
  // Bytes: hex, canonical standard base64, concatenation, comparison.

  function hexToBytes(s, what = "value") {
    if (typeof s !== "string" || s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) {
      fail(`${what} is not hex`);
    }
    const out = new Uint8Array(s.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
    return out;
  }

  function bytesToHex(b) {
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  function bytesToBase64(b) {
    let bin = "";
    for (const x of b) bin += String.fromCharCode(x);
    return btoa(bin);
  }

  const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

  /** Decodes canonical, padded standard base64 (as Rust's `STANDARD` engine); null if not. */
  function base64ToBytes(s) {
    if (typeof s !== "string" || !BASE64_RE.test(s)) return null;
    const bin = atob(s);
    const out = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return bytesToBase64(out) === s ? out : null;
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  function equalBytes(a, b) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }

  function u32be(b, at = 0) {
    return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
  }

  function hex8(n) {
    return n.toString(16).padStart(8, "0");
  }

  // ---------------------------------------------------------------------------------------------
  // Hashes (RFC 9162 §2.1.1).

  async function sha256(bytes) {
    return new Uint8Array(await subtle().digest("SHA-256", bytes));
  }

  function hashLeaf(input) {
    return sha256(concat(Uint8Array.of(0x00), input));
  }

  function hashChildren(left, right) {
    return sha256(concat(Uint8Array.of(0x01), left, right));
  }

  // ---------------------------------------------------------------------------------------------
  // C2SP signed notes.

  /** Whether `name` is a valid key name: non-empty, no whitespace, no '+'. */
  function isValidName(name) {
    return typeof name === "string" && name.length > 0 && !/[\s+]/u.test(name);
  }

  /** Key ID: the first four bytes (big-endian) of SHA-256(name ‖ 0x0A ‖ type ‖ public key). */
  async function keyId(name, sigType, publicKey) {
    const digest = await sha256(concat(utf8.encode(name), Uint8Array.of(0x0a, sigType), publicKey));
    return u32be(digest);
  }

  /** Parses one signature line (without its newline) into {name, keyId, sig}. */
  function parseSignatureLine(line) {
    if (!line.startsWith(SIGNATURE_LINE_PREFIX)) {
      fail("malformed note: signature line must start with an em dash and a space");
    }
    const rest = line.slice(SIGNATURE_LINE_PREFIX.length);
    const space = rest.indexOf(" ");
    if (space < 0) fail("malformed note: signature line lacks a space");
    const name = rest.slice(0, space);
    if (!isValidName(name)) fail("malformed note: invalid key name in signature line");
    const raw = base64ToBytes(rest.slice(space + 1));
    if (raw === null) fail("malformed note: signature is not standard base64");
    if (raw.length <= KEY_ID_BYTES) fail("malformed note: signature is too short");
    return { name, keyId: u32be(raw), sig: raw.slice(KEY_ID_BYTES) };
  }

  /** Parses a note (no signature is verified) into {text, signatures}, as note.rs `Note::parse`. */
  function parseNote(msg) {
    if (typeof msg !== "string") fail("malformed note: not text");
    const len = utf8.encode(msg).length;
    if (len > NOTE_BYTES_MAX) fail(`note is ${len} bytes, more than the limit of ${NOTE_BYTES_MAX}`);
    if (/[\u0000-\u0009\u000b-\u001f]/.test(msg)) {
      fail("malformed note: control character other than newline");
    }
    const split = msg.lastIndexOf("\n\n");
    if (split < 0) fail("malformed note: no blank line before signatures");
    const text = msg.slice(0, split + 1);
    const sigs = msg.slice(split + 2);
    if (sigs.length === 0 || !sigs.endsWith("\n")) {
      fail("malformed note: signature block must be non-empty and end with a newline");
    }
    const signatures = [];
    for (const line of sigs.slice(0, -1).split("\n")) {
      if (signatures.length === SIGNATURES_MAX) fail(`note has more than ${SIGNATURES_MAX} signature lines`);
      signatures.push(parseSignatureLine(line));
    }
    return { text, signatures };
  }

  /**
   * Parses a verifier key `name+hexkeyid+base64(type ‖ key)` and checks its key ID. Returns
   * {name, keyId, sigType, publicKey (bytes), cryptoKey (WebCrypto Ed25519 key)}.
   */
  async function parseVerifierKey(vkey) {
    const bad = (why) => fail(`malformed verifier key ${JSON.stringify(vkey)}: ${why}`);
    if (typeof vkey !== "string") bad("not text");
    const plus = vkey.indexOf("+");
    if (plus < 0) bad("expected name+id+key");
    const name = vkey.slice(0, plus);
    if (!isValidName(name)) bad("invalid name");
    const rest = vkey.slice(plus + 1);
    const plus2 = rest.indexOf("+");
    if (plus2 < 0) bad("missing '+'");
    const idHex = rest.slice(0, plus2);
    if (!/^[0-9a-fA-F]{8}$/.test(idHex)) bad("key ID must be 8 hex digits");
    const material = base64ToBytes(rest.slice(plus2 + 1));
    if (material === null || material.length === 0) bad("key material is not standard base64");
    const sigType = material[0];
    if (sigType !== SIG_TYPE_ED25519 && sigType !== SIG_TYPE_COSIGNATURE_V1) {
      bad(`unsupported signature type 0x${sigType.toString(16).padStart(2, "0")}`);
    }
    const publicKey = material.slice(1);
    if (publicKey.length !== ED25519_KEY_BYTES) bad("Ed25519 key must be 32 bytes");
    const id = parseInt(idHex, 16);
    const expected = await keyId(name, sigType, publicKey);
    if (id !== expected) bad(`key ID ${hex8(id)} does not match the key (expected ${hex8(expected)})`);
    let cryptoKey;
    try {
      cryptoKey = await subtle().importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      bad(`WebCrypto refused the Ed25519 key (${e && e.message ? e.message : e})`);
    }
    return { name, keyId: id, sigType, publicKey, cryptoKey };
  }

  /** Verifies `sig` (bytes after the key ID) over note `text` under `key`; false if invalid. */
  async function verifyNoteSignature(key, text, sig) {
    let message = utf8.encode(text);
    let signature = sig;
    if (key.sigType === SIG_TYPE_COSIGNATURE_V1) {
      if (sig.length !== TIMESTAMP_BYTES + ED25519_SIGNATURE_BYTES) return false;
      const view = new DataView(sig.buffer, sig.byteOffset, TIMESTAMP_BYTES);
      const timestamp = view.getBigUint64(0);
      if (timestamp > MAX_COSIGNATURE_TIMESTAMP) return false;
      message = utf8.encode(`${COSIGNATURE_V1_HEADER}\ntime ${timestamp}\n${text}`);
      signature = sig.slice(TIMESTAMP_BYTES);
    }
    if (signature.length !== ED25519_SIGNATURE_BYTES) return false;
    return subtle().verify({ name: "Ed25519" }, key.cryptoKey, signature, message);
  }

  /**
   * Parses `msg` and verifies its signatures against `known` keys (from `parseVerifierKey`), as
   * note.rs `open`: unknown lines are counted and ignored, a known key's bad signature rejects the
   * note, repeats count once, at least one known key must have signed.
   * Returns {text, verified: [{name, keyId}], unknownSignatures}.
   */
  async function openNote(msg, known) {
    const note = parseNote(msg);
    const opened = { text: note.text, verified: [], unknownSignatures: 0 };
    for (const sig of note.signatures) {
      const matching = known.filter((k) => k.name === sig.name && k.keyId === sig.keyId);
      if (matching.length === 0) {
        opened.unknownSignatures += 1;
        continue;
      }
      const key = matching[0];
      if (matching.some((k) => k.sigType !== key.sigType || !equalBytes(k.publicKey, key.publicKey))) {
        fail(`more than one configured key is ${sig.name}+${hex8(sig.keyId)}`);
      }
      if (opened.verified.some((v) => v.name === sig.name && v.keyId === sig.keyId)) continue;
      if (!(await verifyNoteSignature(key, note.text, sig.sig))) {
        fail(`invalid signature from known key ${sig.name}+${hex8(sig.keyId)}`);
      }
      opened.verified.push({ name: key.name, keyId: key.keyId });
    }
    if (opened.verified.length === 0) fail("note has no valid signature from a known key");
    return opened;
  }

  // ---------------------------------------------------------------------------------------------
  // C2SP tlog-checkpoint bodies.

  /** A decimal u64 without sign or leading zeros, as a BigInt; null if not. */
  function parseDecimalU64(s) {
    if (!/^(0|[1-9][0-9]*)$/.test(s)) return null;
    const n = BigInt(s);
    return n <= MAX_U64 ? n : null;
  }

  /** Parses a checkpoint body (final newline included) into {origin, size (BigInt), root, extensions}. */
  function parseCheckpoint(text) {
    const len = utf8.encode(text).length;
    if (len > MAX_CHECKPOINT_BYTES) fail(`checkpoint is ${len} bytes, more than the limit of ${MAX_CHECKPOINT_BYTES}`);
    if (!text.endsWith("\n")) fail("checkpoint must end with a newline");
    const body = text.slice(0, -1);
    if (/[\u0000-\u0009\u000b-\u001f]/.test(body)) fail("checkpoint line has a control character");
    const lines = body.split("\n");
    if (lines.length < 3) fail("checkpoint needs origin, size and root lines");
    const [origin, sizeLine, rootLine, ...extensions] = lines;
    if (origin.length === 0) fail("checkpoint origin line is empty");
    const size = parseDecimalU64(sizeLine);
    if (size === null) fail(`tree size ${JSON.stringify(sizeLine)} is not a decimal u64 without leading zeros`);
    const rootHash = base64ToBytes(rootLine);
    if (rootHash === null || rootHash.length !== HASH_BYTES) {
      fail(`root hash ${JSON.stringify(rootLine)} is not the canonical base64 of 32 bytes`);
    }
    if (extensions.some((l) => l.length === 0)) fail("extension lines must be non-empty");
    if (extensions.length > MAX_EXTENSION_LINES) fail(`more than ${MAX_EXTENSION_LINES} extension lines`);
    return { origin, size, root: rootHash, extensions };
  }

  // ---------------------------------------------------------------------------------------------
  // RFC 9162 §2.1.3.2 inclusion verification.

  function toU64(v, what) {
    let n;
    try {
      n = BigInt(v);
    } catch (_) {
      fail(`${what} is not an integer`);
    }
    if (n < 0n || n > MAX_U64) fail(`${what} is out of range`);
    return n;
  }

  /** The root that an inclusion proof implies (steps 1–5 of RFC 9162 §2.1.3.2). */
  async function rootFromInclusionProof(leafHash, index, size, proof) {
    const i = toU64(index, "leaf index");
    const n = toU64(size, "tree size");
    if (i >= n) fail(`leaf index ${i} is not below the tree size ${n}`);
    if (leafHash.length !== HASH_BYTES) fail("leaf hash is not 32 bytes");
    if (proof.some((p) => p.length !== HASH_BYTES)) fail("a proof hash is not 32 bytes");
    let fn = i;
    let sn = n - 1n;
    let r = leafHash;
    for (const p of proof) {
      if (sn === 0n) fail("inclusion proof is too long");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await hashChildren(p, r);
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        r = await hashChildren(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) fail("inclusion proof is too short");
    return r;
  }

  /** Throws unless `proof` proves `leafHash` at `index` in the tree of `size` leaves with `root`. */
  async function verifyInclusion(leafHash, index, size, proof, rootHash) {
    const computed = await rootFromInclusionProof(leafHash, index, size, proof);
    if (!equalBytes(computed, rootHash)) fail("inclusion proof does not lead to the checkpoint's root");
  }

  // ---------------------------------------------------------------------------------------------
  // A transaction, end to end, against the node's API.

  /** Signatures needed: 2f+1 of n validators, n ≥ 3f+1 (genesis.rs `quorum`). */
  function quorumOf(n) {
    return n - Math.floor(Math.max(n - 1, 0) / 3);
  }

  /** Whether the page asks for the tampered proof (`?proof=tampered` in the query or the #route). */
  function wantsTamperedProof(loc) {
    if (!loc) return false;
    const hash = loc.hash || "";
    const hashQuery = hash.includes("?") ? hash.slice(hash.indexOf("?") + 1) : "";
    return [loc.search || "", hashQuery].some((q) => new URLSearchParams(q).get("proof") === "tampered");
  }

  async function getJson(fetchFn, base, path) {
    let resp;
    try {
      resp = await fetchFn(base + path, { headers: { Accept: "application/json" } });
    } catch (e) {
      fail(`could not fetch ${path}: ${e && e.message ? e.message : e}`);
    }
    if (!resp.ok) fail(`${path} answered ${resp.status}`);
    try {
      return await resp.json();
    } catch (_) {
      fail(`${path} did not answer JSON`);
    }
  }

  /** The validators' verifier keys and n, from `/v1/validators`. */
  async function validatorKeys(validators) {
    if (!Array.isArray(validators) || validators.length === 0) fail("the node lists no validators");
    const keys = [];
    for (const v of validators) {
      if (v && typeof v.note_verifier_key === "string") keys.push(await parseVerifierKey(v.note_verifier_key));
    }
    return { keys, n: validators.length };
  }

  /** Checks the checkpoint note: quorum of validator signatures, origin; returns the checkpoint. */
  async function checkCheckpoint(note, keys, n, origin) {
    const quorum = quorumOf(n);
    const opened = await openNote(note, keys);
    const signers = opened.verified.length;
    if (signers < quorum) fail(`only ${signers} valid validator signatures; ${quorum} needed`);
    const checkpoint = parseCheckpoint(opened.text);
    if (origin !== undefined && checkpoint.origin !== origin) {
      fail(`checkpoint origin ${JSON.stringify(checkpoint.origin)} is not ${JSON.stringify(origin)}`);
    }
    return { checkpoint, signers, quorum };
  }

  /** The transaction's bytes from the node, checked against the hash asked for. */
  async function txBytes(fetchFn, base, hash) {
    const raw = await getJson(fetchFn, base, `/v1/tx/${hash}/raw`);
    const bytes = hexToBytes(raw && raw.cbor, "transaction bytes");
    if (bytesToHex(await sha256(bytes)) !== hash) fail(`the node's transaction bytes do not hash to ${hash}`);
    return bytes;
  }

  /**
   * Verifies transaction `hash` against the node, trusting only WebCrypto and the validator set.
   * Options: `fetch` (default: global fetch), `base` (API origin, default ""), `tampered` (ask
   * the test hook for a tampered proof; default: the page URL has `proof=tampered`), `location`.
   * Returns {ok: true, index, size, signers, n, quorum, height} or {ok: false, error}.
   */
  function verifyTx(hash, options = {}) {
    return asResult(verifyTxOrThrow(hash, options));
  }

  /** A verification's result, or {ok: false, error} if it threw. */
  async function asResult(work) {
    try {
      return await work;
    } catch (e) {
      return { ok: false, error: e && e.message ? e.message : String(e) };
    }
  }

  /** The fetch, API origin and tampered-proof switch a verification uses (see `verifyTx`). */
  function readOptions(options) {
    return {
      fetchFn: options.fetch || root.fetch.bind(root),
      base: options.base || "",
      tampered: options.tampered !== undefined ? options.tampered : wantsTamperedProof(options.location || root.location),
    };
  }

  async function verifyTxOrThrow(hashIn, options) {
    const { fetchFn, base, tampered } = readOptions(options);
    if (typeof hashIn !== "string" || !/^[0-9a-fA-F]{64}$/.test(hashIn)) fail("a transaction hash is 64 hex characters");
    const hash = hashIn.toLowerCase();
    const proofPath = tampered ? `/v1/test/tampered-proof/${hash}` : `/v1/tx/${hash}`;
    const [status, validators, nodeStatus] = await Promise.all([
      getJson(fetchFn, base, proofPath),
      getJson(fetchFn, base, "/v1/validators"),
      getJson(fetchFn, base, "/v1/status"),
    ]);
    if (status.status !== "final" || !status.proof) fail(`transaction is ${status.status}, not final`);
    const proof = status.proof;
    if (!proof.checkpoint) fail("no final checkpoint covers this transaction yet; retry shortly");
    const { keys, n } = await validatorKeys(validators);
    const origin = nodeStatus && nodeStatus.chain_id ? ORIGIN_PREFIX + nodeStatus.chain_id : undefined;
    const { checkpoint, signers, quorum } = await checkCheckpoint(proof.checkpoint, keys, n, origin);
    const proofRoot = hexToBytes(proof.root, "proof root");
    if (checkpoint.size !== toU64(proof.log_size, "proof tree size") || !equalBytes(checkpoint.root, proofRoot)) {
      fail("the proof is not against the checkpoint it came with");
    }
    const leaf = await hashLeaf(await txBytes(fetchFn, base, hash));
    const path = (proof.hashes || []).map((h) => hexToBytes(h, "proof hash"));
    await verifyInclusion(leaf, proof.leaf_index, checkpoint.size, path, checkpoint.root);
    return {
      ok: true,
      index: Number(proof.leaf_index),
      size: Number(checkpoint.size),
      signers,
      n,
      quorum,
      height: status.height,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // State proofs (types/src/state_proof.rs): a sparse Merkle tree keyed by SHA-256(key), empty
  // subtree = 32 zero bytes, leaf = SHA-256(0x00 ‖ key hash ‖ SHA-256(value)), branch =
  // SHA-256(0x01 ‖ left ‖ right); the checkpoint line `chipledger-state <height> <base64 root>`
  // binds the root.

  function keyBit(keyHash, depth) {
    return ((keyHash[depth >> 3] >> (7 - (depth & 7))) & 1) === 1;
  }

  function hash32(s, what) {
    const b = hexToBytes(s, what);
    if (b.length !== HASH_BYTES) fail(`${what} is not 32 bytes`);
    return b;
  }

  /** The (height, root) of the checkpoint's first well-formed `chipledger-state` line, or null. */
  function stateLine(checkpoint) {
    for (const line of checkpoint.extensions || []) {
      const parts = line.split(" ");
      if (parts.length !== 3 || parts[0] !== STATE_EXTENSION_PREFIX) continue;
      const height = parseDecimalU64(parts[1]);
      const rootHash = base64ToBytes(parts[2]);
      if (height !== null && rootHash !== null && rootHash.length === HASH_BYTES) return { height, root: rootHash };
    }
    return null;
  }

  /**
   * Checks one proven state value `{key, value, siblings, leaf}` (the node's `ProvenValue`)
   * against `stateRoot`: the value's bytes, or null when the proof shows the key is absent.
   */
  async function verifyStateValue(stateRoot, expectedKey, pv) {
    if (!pv || pv.key !== expectedKey) {
      fail(`the proof is for state key ${JSON.stringify(pv && pv.key)}, not ${JSON.stringify(expectedKey)}`);
    }
    const siblings = pv.siblings || [];
    if (!Array.isArray(siblings) || siblings.length > MAX_PROOF_SIBLINGS) {
      fail(`the proof of ${expectedKey} has more than ${MAX_PROOF_SIBLINGS} siblings`);
    }
    const path = siblings.map((x) => hash32(x, "proof sibling"));
    const keyHash = await sha256(utf8.encode(pv.key));
    const value = pv.value === null || pv.value === undefined ? null : hexToBytes(pv.value, "state value");
    const valueHash = value === null ? null : await sha256(value);
    const leaf = pv.leaf ? [hash32(pv.leaf[0], "leaf key hash"), hash32(pv.leaf[1], "leaf value hash")] : null;
    const mismatch = () => fail(`the proof of ${expectedKey} does not lead to the state root`);
    let acc;
    if (leaf && equalBytes(leaf[0], keyHash)) {
      if (valueHash === null || !equalBytes(leaf[1], valueHash)) mismatch();
      acc = await sha256(concat(Uint8Array.of(0x00), leaf[0], leaf[1]));
    } else if (leaf && valueHash === null) {
      // Another key's leaf proves absence only if it sits on this key's path.
      for (let i = 0; i < path.length; i++) {
        if (keyBit(leaf[0], i) !== keyBit(keyHash, i)) fail(`the proof's leaf is not on the path of ${expectedKey}`);
      }
      acc = await sha256(concat(Uint8Array.of(0x00), leaf[0], leaf[1]));
    } else if (!leaf && valueHash === null) {
      acc = new Uint8Array(HASH_BYTES);
    } else {
      mismatch();
    }
    for (let i = path.length - 1; i >= 0; i--) {
      acc = keyBit(keyHash, i) ? await hashChildren(path[i], acc) : await hashChildren(acc, path[i]);
    }
    if (!equalBytes(acc, stateRoot)) mismatch();
    return value;
  }

  /**
   * Checks a node's `StateProofs` ({checkpoint, state_height, state_root, values}): the
   * checkpoint is signed by a quorum of `validators`, its state line binds `state_root`, and
   * each of `values` proves the key at the same position of `keys`. Returns the checkpoint
   * facts and the proven values (bytes or null).
   */
  async function verifyStateProofs(proofs, keys, validators, chainId) {
    if (!proofs || typeof proofs.checkpoint !== "string") fail("no state proofs");
    const { keys: vkeys, n } = await validatorKeys(validators);
    const origin = chainId ? ORIGIN_PREFIX + chainId : undefined;
    const { checkpoint, signers, quorum } = await checkCheckpoint(proofs.checkpoint, vkeys, n, origin);
    const line = stateLine(checkpoint);
    if (!line) fail("the checkpoint binds no state root");
    const stateRoot = hash32(proofs.state_root, "state root");
    if (!equalBytes(line.root, stateRoot) || line.height !== toU64(proofs.state_height, "state height")) {
      fail("the proofs are not against the state root the checkpoint binds");
    }
    const values = proofs.values || [];
    if (values.length !== keys.length) fail(`${values.length} proofs for ${keys.length} keys`);
    const out = [];
    for (let i = 0; i < keys.length; i++) out.push(await verifyStateValue(stateRoot, keys[i], values[i]));
    return { size: checkpoint.size, stateHeight: line.height, signers, n, quorum, values: out };
  }

  // ---------------------------------------------------------------------------------------------
  // A small, bounded CBOR decoder (RFC 8949): definite lengths, the types the ledger writes.

  function decodeCbor(bytes) {
    let pos = 0;
    let items = 0;
    const need = (n) => {
      if (pos + n > bytes.length) fail("truncated CBOR");
    };
    const arg = (info) => {
      if (info < 24) return info;
      const len = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
      if (!len) fail("unsupported CBOR length");
      need(len);
      let v = 0n;
      for (let i = 0; i < len; i++) v = (v << 8n) | BigInt(bytes[pos++]);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    };
    const simple = (info) => {
      if (info === 20) return false;
      if (info === 21) return true;
      if (info === 22) return null;
      if (info === 27) {
        need(8);
        const v = new DataView(bytes.buffer, bytes.byteOffset + pos, 8).getFloat64(0);
        pos += 8;
        return v;
      }
      return fail("unsupported CBOR simple value");
    };
    const item = (depth) => {
      if (depth > MAX_CBOR_DEPTH || ++items > MAX_CBOR_ITEMS) fail("CBOR too deep or too large");
      need(1);
      const ib = bytes[pos++];
      const major = ib >> 5;
      const info = ib & 31;
      if (major === 7) return simple(info);
      const n = arg(info);
      const len = typeof n === "bigint" ? Infinity : n;
      switch (major) {
        case 0:
          return n;
        case 1:
          return typeof n === "bigint" ? -1n - n : -1 - n;
        case 2:
          need(len);
          pos += len;
          return bytes.slice(pos - len, pos);
        case 3:
          need(len);
          pos += len;
          return new TextDecoder("utf-8", { fatal: true }).decode(bytes.slice(pos - len, pos));
        case 4: {
          need(len);
          const a = [];
          for (let i = 0; i < len; i++) a.push(item(depth + 1));
          return a;
        }
        case 5: {
          need(len);
          const m = new Map();
          for (let i = 0; i < len; i++) m.set(item(depth + 1), item(depth + 1));
          return m;
        }
        default:
          return { tag: n, value: item(depth + 1) };
      }
    };
    const v = item(0);
    if (pos !== bytes.length) fail("trailing bytes after the CBOR item");
    return v;
  }

  // ---------------------------------------------------------------------------------------------
  // A device's proven state (`/v1/devices/{id}/proofs`), decoded as `state/src/model.rs` and
  // `types/src/{firmware_tx,data_tx}.rs` encode it.

  function decodeDeviceRecord(bytes) {
    const r = decodeCbor(bytes);
    if (!Array.isArray(r) || r.length !== 11) fail("the proven device record is not an 11-field array");
    const att = r[9];
    if (att !== null && (!Array.isArray(att) || att.length !== 6)) fail("the proven attestation is malformed");
    return {
      id: r[0] instanceof Uint8Array ? bytesToHex(r[0]) : null,
      manufacturer: r[1],
      model: r[3],
      owner: r[5],
      offeredTo: r[6],
      registeredHeight: r[7],
      revoked: r[8] !== null,
      attestedVersion: att ? att[2] : null,
      attestedName: att ? att[1] : null,
      attestedHeight: att ? att[0] : null,
    };
  }

  function decodeInstalled(bytes) {
    const r = decodeCbor(bytes);
    if (!Array.isArray(r) || r.length !== 5) fail("the proven installed firmware is not a 5-field array");
    return { release: bytesToHex(r[0]), version: r[1], securityVersion: r[2], height: r[3], tx: bytesToHex(r[4]) };
  }

  function decodeHead(bytes) {
    const r = decodeCbor(bytes);
    if (!Array.isArray(r) || r.length !== 8) fail("the proven chain head is not an 8-field array");
    return { seq: r[0], hash: bytesToHex(r[1]), trust: r[2], records: r[3], missing: r[4], gateway: r[5], batchSeq: r[6], height: r[7] };
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  /**
   * Verifies device `id`'s state against the node, trusting only WebCrypto and the validator
   * set: its record, installed firmware and chain heads, proven under the state root of a
   * checkpoint signed by a quorum. Options as `verifyTx` (`tampered` asks the test hook for a
   * device record the node altered). Returns {ok: true, size, stateHeight, signers, n, quorum,
   * device, installed, heads: [{stream, …}]} or {ok: false, error}.
   */
  function verifyDevice(id, options = {}) {
    return asResult(verifyDeviceOrThrow(id, options));
  }

  async function verifyDeviceOrThrow(idIn, options) {
    const { fetchFn, base, tampered } = readOptions(options);
    if (typeof idIn !== "string" || !/^[0-9a-fA-F]{40}$/.test(idIn)) fail("a device id is 40 hex characters");
    const id = idIn.toLowerCase();
    const path = tampered ? `/v1/test/tampered-device-proofs/${id}` : `/v1/devices/${id}/proofs`;
    let body = null;
    for (let attempt = 0; ; attempt++) {
      body = await getJson(fetchFn, base, path);
      if (body && body.proofs) break;
      if (attempt + 1 >= DEVICE_PROOF_TRIES) fail("no final checkpoint binds the current state yet; retry shortly");
      await sleep(Math.min(Number(body && body.retry_after_ms) || 1000, 5000));
    }
    const [validators, nodeStatus] = await Promise.all([
      getJson(fetchFn, base, "/v1/validators"),
      getJson(fetchFn, base, "/v1/status"),
    ]);
    // The keys this page asks for are its own: device record and installed firmware; chain
    // heads only under this device's prefix.
    const keys = [`device/${id}`, `fw/installed/${id}`];
    const heads = (body.keys || []).slice(2);
    const headPrefix = `data/head/${id}/`;
    for (const k of heads) {
      if (typeof k !== "string" || !k.startsWith(headPrefix)) fail(`state key ${JSON.stringify(k)} is not a chain head of this device`);
      keys.push(k);
    }
    const res = await verifyStateProofs(body.proofs, keys, validators, nodeStatus && nodeStatus.chain_id);
    const [record, installed, ...headValues] = res.values;
    if (record === null) fail(`the ledger proves device ${id} is not registered`);
    const device = decodeDeviceRecord(record);
    return {
      ok: true,
      size: Number(res.size),
      stateHeight: Number(res.stateHeight),
      signers: res.signers,
      n: res.n,
      quorum: res.quorum,
      device,
      installed: installed === null ? null : decodeInstalled(installed),
      heads: heads.map((k, i) => ({ stream: k.slice(headPrefix.length), ...(headValues[i] ? decodeHead(headValues[i]) : { absent: true }) })),
    };
  }

  /** The sentence the page shows for a `verifyTx` result. */
  function renderStatus(result) {
    if (result && result.ok) {
      return `verified against checkpoint ${result.size} signed by ${result.signers} of ${result.n} validators`;
    }
    return `verification failed: ${(result && result.error) || "unknown error"}`;
  }

  root.chipledgerVerify = {
    verifyTx,
    verifyDevice,
    verifyStateValue,
    verifyStateProofs,
    stateLine,
    decodeCbor,
    renderStatus,
    sha256,
    hashLeaf,
    hashChildren,
    keyId,
    parseNote,
    parseVerifierKey,
    openNote,
    parseCheckpoint,
    checkCheckpoint,
    rootFromInclusionProof,
    verifyInclusion,
    quorumOf,
    wantsTamperedProof,
    hexToBytes,
    bytesToHex,
    base64ToBytes,
  };
})(typeof window !== "undefined" ? window : globalThis);
