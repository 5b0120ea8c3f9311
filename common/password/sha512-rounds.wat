;; The rounds of SHA-512 crypt ("$6$", Drepper's specification, step 21) in one call: SHA-512
;; itself (FIPS 180-4) and the loop that feeds it, so 5,000 rounds cost one call from JavaScript
;; instead of three per round. sha512-crypt.ts does the rest (steps 1-20 and the encoding) and
;; checks this against node:crypto. Compiled by scripts/gen-wasm.ts into sha512-rounds-wasm.ts.
;;
;; Memory (one page, offsets in bytes), written by the caller before `rounds`:
;;   0     K: the 80 round constants, little-endian i64 (sha512-crypt.ts writes them once)
;;   640   W: the message schedule, 80 x i64
;;   1280  H: the running state, 8 x i64
;;   1344  PAD: the last one or two blocks with the padding, 256 bytes
;;   1600  C: the running digest, 64 bytes (in: after step 20; out: after the rounds)
;;   1664  S: the S sequence, up to 16 bytes
;;   1680  P: the P sequence, up to 4096 bytes
;;   8192  M: one round's input, up to 2 * 4096 + 16 + 64 bytes
(module
  (memory (export "memory") 1)

  (func $bswap (param $x i64) (result i64)
    (local.set $x
      (i64.or
        (i64.shl (i64.and (local.get $x) (i64.const 0x00FF00FF00FF00FF)) (i64.const 8))
        (i64.and (i64.shr_u (local.get $x) (i64.const 8)) (i64.const 0x00FF00FF00FF00FF))))
    (local.set $x
      (i64.or
        (i64.shl (i64.and (local.get $x) (i64.const 0x0000FFFF0000FFFF)) (i64.const 16))
        (i64.and (i64.shr_u (local.get $x) (i64.const 16)) (i64.const 0x0000FFFF0000FFFF))))
    (i64.rotl (local.get $x) (i64.const 32)))

  ;; One 128-byte block at $block into H.
  (func $compress (param $block i32)
    (local $t i32) (local $w i64) (local $w2 i64) (local $w15 i64)
    (local $a i64) (local $b i64) (local $c i64) (local $d i64)
    (local $e i64) (local $f i64) (local $g i64) (local $h i64)
    (local $t1 i64) (local $t2 i64)
    ;; W[0..15]: the block's big-endian words
    (local.set $t (i32.const 0))
    (loop $load
      (i64.store offset=640
        (i32.shl (local.get $t) (i32.const 3))
        (call $bswap (i64.load (i32.add (local.get $block) (i32.shl (local.get $t) (i32.const 3))))))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (br_if $load (i32.lt_u (local.get $t) (i32.const 16))))
    ;; W[16..79] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16]
    (loop $expand
      (local.set $w2 (i64.load offset=640 (i32.shl (i32.sub (local.get $t) (i32.const 2)) (i32.const 3))))
      (local.set $w15 (i64.load offset=640 (i32.shl (i32.sub (local.get $t) (i32.const 15)) (i32.const 3))))
      (i64.store offset=640
        (i32.shl (local.get $t) (i32.const 3))
        (i64.add
          (i64.add
            (i64.xor
              (i64.xor (i64.rotr (local.get $w2) (i64.const 19)) (i64.rotr (local.get $w2) (i64.const 61)))
              (i64.shr_u (local.get $w2) (i64.const 6)))
            (i64.load offset=640 (i32.shl (i32.sub (local.get $t) (i32.const 7)) (i32.const 3))))
          (i64.add
            (i64.xor
              (i64.xor (i64.rotr (local.get $w15) (i64.const 1)) (i64.rotr (local.get $w15) (i64.const 8)))
              (i64.shr_u (local.get $w15) (i64.const 7)))
            (i64.load offset=640 (i32.shl (i32.sub (local.get $t) (i32.const 16)) (i32.const 3))))))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (br_if $expand (i32.lt_u (local.get $t) (i32.const 80))))
    (local.set $a (i64.load offset=1280 (i32.const 0)))
    (local.set $b (i64.load offset=1288 (i32.const 0)))
    (local.set $c (i64.load offset=1296 (i32.const 0)))
    (local.set $d (i64.load offset=1304 (i32.const 0)))
    (local.set $e (i64.load offset=1312 (i32.const 0)))
    (local.set $f (i64.load offset=1320 (i32.const 0)))
    (local.set $g (i64.load offset=1328 (i32.const 0)))
    (local.set $h (i64.load offset=1336 (i32.const 0)))
    (local.set $t (i32.const 0))
    (loop $round
      ;; T1 = h + S1(e) + Ch(e, f, g) + K[t] + W[t]
      (local.set $t1
        (i64.add
          (i64.add
            (i64.add
              (local.get $h)
              (i64.xor
                (i64.xor (i64.rotr (local.get $e) (i64.const 14)) (i64.rotr (local.get $e) (i64.const 18)))
                (i64.rotr (local.get $e) (i64.const 41))))
            (i64.xor
              (i64.and (local.get $e) (local.get $f))
              (i64.and (i64.xor (local.get $e) (i64.const -1)) (local.get $g))))
          (i64.add
            (i64.load (i32.shl (local.get $t) (i32.const 3)))
            (i64.load offset=640 (i32.shl (local.get $t) (i32.const 3))))))
      ;; T2 = S0(a) + Maj(a, b, c)
      (local.set $t2
        (i64.add
          (i64.xor
            (i64.xor (i64.rotr (local.get $a) (i64.const 28)) (i64.rotr (local.get $a) (i64.const 34)))
            (i64.rotr (local.get $a) (i64.const 39)))
          (i64.xor
            (i64.xor (i64.and (local.get $a) (local.get $b)) (i64.and (local.get $a) (local.get $c)))
            (i64.and (local.get $b) (local.get $c)))))
      (local.set $h (local.get $g))
      (local.set $g (local.get $f))
      (local.set $f (local.get $e))
      (local.set $e (i64.add (local.get $d) (local.get $t1)))
      (local.set $d (local.get $c))
      (local.set $c (local.get $b))
      (local.set $b (local.get $a))
      (local.set $a (i64.add (local.get $t1) (local.get $t2)))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (br_if $round (i32.lt_u (local.get $t) (i32.const 80))))
    (i64.store offset=1280 (i32.const 0) (i64.add (i64.load offset=1280 (i32.const 0)) (local.get $a)))
    (i64.store offset=1288 (i32.const 0) (i64.add (i64.load offset=1288 (i32.const 0)) (local.get $b)))
    (i64.store offset=1296 (i32.const 0) (i64.add (i64.load offset=1296 (i32.const 0)) (local.get $c)))
    (i64.store offset=1304 (i32.const 0) (i64.add (i64.load offset=1304 (i32.const 0)) (local.get $d)))
    (i64.store offset=1312 (i32.const 0) (i64.add (i64.load offset=1312 (i32.const 0)) (local.get $e)))
    (i64.store offset=1320 (i32.const 0) (i64.add (i64.load offset=1320 (i32.const 0)) (local.get $f)))
    (i64.store offset=1328 (i32.const 0) (i64.add (i64.load offset=1328 (i32.const 0)) (local.get $g)))
    (i64.store offset=1336 (i32.const 0) (i64.add (i64.load offset=1336 (i32.const 0)) (local.get $h))))

  ;; SHA-512 of $len bytes at $msg, the 64-byte digest written to $out.
  (func $sha512 (param $msg i32) (param $len i32) (param $out i32)
    (local $off i32) (local $full i32) (local $rem i32) (local $i i32)
    (i64.store offset=1280 (i32.const 0) (i64.const 0x6a09e667f3bcc908))
    (i64.store offset=1288 (i32.const 0) (i64.const 0xbb67ae8584caa73b))
    (i64.store offset=1296 (i32.const 0) (i64.const 0x3c6ef372fe94f82b))
    (i64.store offset=1304 (i32.const 0) (i64.const 0xa54ff53a5f1d36f1))
    (i64.store offset=1312 (i32.const 0) (i64.const 0x510e527fade682d1))
    (i64.store offset=1320 (i32.const 0) (i64.const 0x9b05688c2b3e6c1f))
    (i64.store offset=1328 (i32.const 0) (i64.const 0x1f83d9abfb41bd6b))
    (i64.store offset=1336 (i32.const 0) (i64.const 0x5be0cd19137e2179))
    (local.set $full (i32.and (local.get $len) (i32.const -128)))
    (local.set $off (i32.const 0))
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $off) (local.get $full)))
        (call $compress (i32.add (local.get $msg) (local.get $off)))
        (local.set $off (i32.add (local.get $off) (i32.const 128)))
        (br $blocks)))
    ;; The rest, 0x80, zeros and the length in bits (big-endian, in the last 16 bytes).
    (local.set $rem (i32.sub (local.get $len) (local.get $full)))
    (memory.fill (i32.const 1344) (i32.const 0) (i32.const 256))
    (memory.copy (i32.const 1344) (i32.add (local.get $msg) (local.get $full)) (local.get $rem))
    (i32.store8 (i32.add (i32.const 1344) (local.get $rem)) (i32.const 0x80))
    (if (i32.ge_u (local.get $rem) (i32.const 112))
      (then
        (i64.store (i32.const 1592) (call $bswap (i64.shl (i64.extend_i32_u (local.get $len)) (i64.const 3))))
        (call $compress (i32.const 1344))
        (call $compress (i32.const 1472)))
      (else
        (i64.store (i32.const 1464) (call $bswap (i64.shl (i64.extend_i32_u (local.get $len)) (i64.const 3))))
        (call $compress (i32.const 1344))))
    (local.set $i (i32.const 0))
    (loop $write
      (i64.store
        (i32.add (local.get $out) (local.get $i))
        (call $bswap (i64.load offset=1280 (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br_if $write (i32.lt_u (local.get $i) (i32.const 64)))))

  ;; Rounds $from .. $to - 1 over C (64 bytes at 1600), with P ($plen bytes at 1680) and S ($slen
  ;; bytes at 1664): round i hashes (i odd ? P : C) (i % 3 ? S) (i % 7 ? P) (i odd ? C : P).
  (func (export "rounds") (param $plen i32) (param $slen i32) (param $from i32) (param $to i32)
    (local $i i32) (local $n i32)
    (local.set $i (local.get $from))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $to)))
        (local.set $n (i32.const 8192))
        (if (i32.and (local.get $i) (i32.const 1))
          (then
            (memory.copy (local.get $n) (i32.const 1680) (local.get $plen))
            (local.set $n (i32.add (local.get $n) (local.get $plen))))
          (else
            (memory.copy (local.get $n) (i32.const 1600) (i32.const 64))
            (local.set $n (i32.add (local.get $n) (i32.const 64)))))
        (if (i32.rem_u (local.get $i) (i32.const 3))
          (then
            (memory.copy (local.get $n) (i32.const 1664) (local.get $slen))
            (local.set $n (i32.add (local.get $n) (local.get $slen)))))
        (if (i32.rem_u (local.get $i) (i32.const 7))
          (then
            (memory.copy (local.get $n) (i32.const 1680) (local.get $plen))
            (local.set $n (i32.add (local.get $n) (local.get $plen)))))
        (if (i32.and (local.get $i) (i32.const 1))
          (then
            (memory.copy (local.get $n) (i32.const 1600) (i32.const 64))
            (local.set $n (i32.add (local.get $n) (i32.const 64))))
          (else
            (memory.copy (local.get $n) (i32.const 1680) (local.get $plen))
            (local.set $n (i32.add (local.get $n) (local.get $plen)))))
        (call $sha512 (i32.const 8192) (i32.sub (local.get $n) (i32.const 8192)) (i32.const 1600))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))))
