// Bounded parsers for what arrives from the network: RTP headers and their
// extensions (RFC 3550, RFC 8285), compound RTCP (RFC 3550, 4585, 5104,
// draft-holmer transport-cc, REMB), the VP8/VP9/H.264 payload facts the SFU
// needs (keyframe start, VP8 picture id / TL0PICIDX positions), and the
// little of STUN the socket demultiplexer reads (RFC 5389 USERNAME).
//
// Every function takes a pointer and a length, reads nothing outside them,
// and reports malformed input by its return value. They are pure (no
// allocation, no global state), which is what the fuzz targets in ../fuzz
// exercise under AddressSanitizer.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace atrium {

inline uint16_t rd16(const uint8_t* p) { return (uint16_t)((p[0] << 8) | p[1]); }
inline uint32_t rd24(const uint8_t* p) { return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2]; }
inline uint32_t rd32(const uint8_t* p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }
inline void wr16(uint8_t* p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
inline void wr32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
/** Signed distance a - b on the 16-bit sequence circle. */
inline int seq_diff(uint16_t a, uint16_t b) { return (int16_t)(uint16_t)(a - b); }

// RFC 7983 demultiplexing on the first byte of a datagram.
enum class Datagram { stun, dtls, media, other };
inline Datagram classify(const uint8_t* p, size_t n) {
  if (n == 0) return Datagram::other;
  uint8_t b = p[0];
  if (b <= 3) return Datagram::stun;
  if (b >= 20 && b <= 63) return Datagram::dtls;
  if (b >= 128 && b <= 191) return Datagram::media;
  return Datagram::other;
}
/** RTP or RTCP (RFC 5761 §4: payload types 64–95 with the marker are RTCP 192–223). */
inline bool is_rtcp(const uint8_t* p, size_t n) { return n >= 2 && p[1] >= 192 && p[1] <= 223; }

struct RtpHeader {
  bool marker;
  bool padding;
  uint8_t pt;
  uint16_t seq;
  uint32_t ts;
  uint32_t ssrc;
  /** Offset of the header extension block's first element (after the 4-byte profile/length word); 0 when none. */
  size_t ext_offset;
  size_t ext_length;
  /** 0xBEDE (one-byte) or 0x1000 (two-byte, low 4 bits are appbits). */
  uint16_t ext_profile;
  /** Bytes of header (fixed + CSRC + extension): the payload starts here. */
  size_t header_length;
  /** Payload length without padding. */
  size_t payload_length;
};

/**
 * Parses an RTP header. `n` is the length of the (decrypted) packet, tag
 * excluded. Returns false when the packet is not valid RTP version 2.
 */
inline bool parse_rtp(const uint8_t* p, size_t n, RtpHeader* h) {
  if (n < 12 || (p[0] >> 6) != 2) return false;
  size_t cc = p[0] & 0x0f;
  bool x = (p[0] & 0x10) != 0;
  h->padding = (p[0] & 0x20) != 0;
  h->marker = (p[1] & 0x80) != 0;
  h->pt = p[1] & 0x7f;
  h->seq = rd16(p + 2);
  h->ts = rd32(p + 4);
  h->ssrc = rd32(p + 8);
  size_t off = 12 + 4 * cc;
  if (off > n) return false;
  h->ext_offset = 0;
  h->ext_length = 0;
  h->ext_profile = 0;
  if (x) {
    if (off + 4 > n) return false;
    h->ext_profile = rd16(p + off);
    size_t words = rd16(p + off + 2);
    if (off + 4 + 4 * words > n) return false;
    h->ext_offset = off + 4;
    h->ext_length = 4 * words;
    off += 4 + 4 * words;
  }
  h->header_length = off;
  size_t pad = 0;
  if (h->padding) {
    if (n == off) return false;
    pad = p[n - 1];
    if (pad == 0 || off + pad > n) return false;
  }
  h->payload_length = n - off - pad;
  return true;
}

/**
 * Finds header extension `id` (RFC 8285, one- or two-byte form). Sets
 * `*data`/`*len` and returns true when present.
 */
inline bool find_extension(const uint8_t* p, const RtpHeader& h, int id, const uint8_t** data, size_t* len) {
  if (h.ext_offset == 0 || id <= 0) return false;
  const uint8_t* e = p + h.ext_offset;
  size_t n = h.ext_length;
  size_t i = 0;
  if (h.ext_profile == 0xBEDE) {
    while (i < n) {
      uint8_t b = e[i];
      if (b == 0) {
        i++;
        continue;
      }
      int eid = b >> 4;
      size_t elen = (size_t)(b & 0x0f) + 1;
      if (eid == 15) return false;  // reserved: stop parsing (RFC 8285 §4.2)
      if (i + 1 + elen > n) return false;
      if (eid == id) {
        *data = e + i + 1;
        *len = elen;
        return true;
      }
      i += 1 + elen;
    }
  } else if ((h.ext_profile & 0xfff0) == 0x1000) {
    while (i < n) {
      uint8_t eid = e[i];
      if (eid == 0) {
        i++;
        continue;
      }
      if (i + 2 > n) return false;
      size_t elen = e[i + 1];
      if (i + 2 + elen > n) return false;
      if (eid == id) {
        *data = e + i + 2;
        *len = elen;
        return true;
      }
      i += 2 + elen;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// Codec payloads

enum class Codec : uint8_t { unknown = 0, vp8 = 1, vp9 = 2, h264 = 3, opus = 4 };

/** Where the VP8 payload descriptor (RFC 7741 §4.2) keeps what a layer switch rewrites. */
struct Vp8Descriptor {
  bool start;      // S bit and partition index 0: first packet of a frame
  bool keyframe;   // start and the VP8 frame tag's P bit is 0
  int picture_id;  // -1 when absent
  int picture_id_bits;  // 7 or 15
  size_t picture_id_offset;
  int tl0picidx;  // -1 when absent
  size_t tl0_offset;
  size_t header_length;  // bytes of descriptor before the VP8 payload
  int width, height;     // keyframe size when readable, else 0
};

inline bool parse_vp8(const uint8_t* p, size_t n, Vp8Descriptor* d) {
  d->start = d->keyframe = false;
  d->picture_id = d->tl0picidx = -1;
  d->picture_id_bits = 0;
  d->picture_id_offset = d->tl0_offset = 0;
  d->width = d->height = 0;
  if (n < 1) return false;
  uint8_t b0 = p[0];
  size_t i = 1;
  if (b0 & 0x80) {
    if (n < 2) return false;
    uint8_t x = p[1];
    i = 2;
    if (x & 0x80) {
      if (i >= n) return false;
      d->picture_id_offset = i;
      if (p[i] & 0x80) {
        if (i + 2 > n) return false;
        d->picture_id = ((p[i] & 0x7f) << 8) | p[i + 1];
        d->picture_id_bits = 15;
        i += 2;
      } else {
        d->picture_id = p[i] & 0x7f;
        d->picture_id_bits = 7;
        i += 1;
      }
    }
    if (x & 0x40) {
      if (i >= n) return false;
      d->tl0_offset = i;
      d->tl0picidx = p[i];
      i += 1;
    }
    if (x & 0x30) {
      if (i >= n) return false;
      i += 1;
    }
  }
  if (i > n) return false;
  d->header_length = i;
  d->start = (b0 & 0x10) != 0 && (b0 & 0x07) == 0;
  if (d->start && i < n) {
    d->keyframe = (p[i] & 0x01) == 0;
    // 3-byte frame tag, start code 9d 01 2a, 14-bit width and height (little endian)
    if (d->keyframe && i + 10 <= n && p[i + 3] == 0x9d && p[i + 4] == 0x01 && p[i + 5] == 0x2a) {
      d->width = (p[i + 6] | (p[i + 7] << 8)) & 0x3fff;
      d->height = (p[i + 8] | (p[i + 9] << 8)) & 0x3fff;
    }
  }
  return true;
}

// draft-ietf-payload-vp9 §4.2: I P L F B E V Z; a keyframe starts with P=0 and B=1 on spatial layer 0.
inline bool vp9_keyframe_start(const uint8_t* p, size_t n) {
  if (n < 1) return false;
  uint8_t b0 = p[0];
  if ((b0 & 0x40) || !(b0 & 0x08)) return false;
  if (b0 & 0x20) {
    size_t i = 1;
    if (b0 & 0x80) {
      if (i >= n) return false;
      i += (p[i] & 0x80) ? 2 : 1;
    }
    if (i >= n) return false;
    return ((p[i] >> 1) & 0x07) == 0;
  }
  return true;
}

// RFC 6184: single NAL (1–23), STAP-A (24), FU-A (28); IDR = 5, SPS = 7.
inline bool h264_keyframe_start(const uint8_t* p, size_t n) {
  if (n < 1) return false;
  int type = p[0] & 0x1f;
  if (type == 5 || type == 7) return true;
  if (type == 24) {
    size_t i = 1;
    while (i + 2 < n) {
      size_t size = rd16(p + i);
      int nal = p[i + 2] & 0x1f;
      if (nal == 5 || nal == 7) return true;
      i += 2 + size;
    }
    return false;
  }
  if (type == 28 && n > 1) {
    uint8_t fu = p[1];
    int nal = fu & 0x1f;
    return (fu & 0x80) && (nal == 5 || nal == 7);
  }
  return false;
}

inline bool keyframe_start(Codec c, const uint8_t* p, size_t n) {
  switch (c) {
    case Codec::vp8: {
      Vp8Descriptor d;
      return parse_vp8(p, n, &d) && d.keyframe;
    }
    case Codec::vp9:
      return vp9_keyframe_start(p, n);
    case Codec::h264:
      return h264_keyframe_start(p, n);
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------
// RTCP (one packet of a compound at a time)

struct RtcpPacket {
  uint8_t count;  // RC / FMT
  uint8_t type;   // PT
  const uint8_t* body;  // after the 4-byte header
  size_t body_length;   // padding excluded
  size_t length;        // whole packet, header included
};

/**
 * The RTCP packet at offset `off` of a compound of length `n`. Returns false
 * when the rest is not a well-formed RTCP packet (the compound ends there).
 */
inline bool next_rtcp(const uint8_t* p, size_t n, size_t off, RtcpPacket* r) {
  if (off + 4 > n) return false;
  const uint8_t* q = p + off;
  if ((q[0] >> 6) != 2) return false;
  size_t len = ((size_t)rd16(q + 2) + 1) * 4;
  if (off + len > n) return false;
  r->count = q[0] & 0x1f;
  r->type = q[1];
  r->body = q + 4;
  r->body_length = len - 4;
  r->length = len;
  if (q[0] & 0x20) {
    size_t pad = q[len - 1];
    if (pad == 0 || pad > len - 4) return false;
    r->body_length -= pad;
  }
  return true;
}

enum : uint8_t { RTCP_SR = 200, RTCP_RR = 201, RTCP_SDES = 202, RTCP_BYE = 203, RTCP_APP = 204, RTCP_RTPFB = 205, RTCP_PSFB = 206 };

struct ReportBlock {
  uint32_t ssrc;
  uint8_t fraction_lost;
  int32_t packets_lost;
  uint32_t highest;
  uint32_t jitter;
  uint32_t lsr;
  uint32_t dlsr;
};

/** Report block `i` of an SR or RR; false when absent. */
inline bool report_block(const RtcpPacket& r, int i, ReportBlock* b) {
  size_t base = r.type == RTCP_SR ? 24 : r.type == RTCP_RR ? 4 : (size_t)-1;
  if (base == (size_t)-1 || i >= r.count) return false;
  size_t off = base + 24 * (size_t)i;
  if (off + 24 > r.body_length) return false;
  const uint8_t* q = r.body + off;
  b->ssrc = rd32(q);
  b->fraction_lost = q[4];
  int32_t lost = (int32_t)rd24(q + 5);
  if (lost & 0x800000) lost -= 0x1000000;
  b->packets_lost = lost;
  b->highest = rd32(q + 8);
  b->jitter = rd32(q + 12);
  b->lsr = rd32(q + 16);
  b->dlsr = rd32(q + 20);
  return true;
}

/** Sender info of an SR: NTP timestamp and RTP timestamp. */
inline bool sender_info(const RtcpPacket& r, uint32_t* ssrc, uint64_t* ntp, uint32_t* rtp) {
  if (r.type != RTCP_SR || r.body_length < 24) return false;
  *ssrc = rd32(r.body);
  *ntp = ((uint64_t)rd32(r.body + 4) << 32) | rd32(r.body + 8);
  *rtp = rd32(r.body + 12);
  return true;
}

/** Media source SSRC of a feedback message (RFC 4585 §6.1). */
inline bool feedback_media_ssrc(const RtcpPacket& r, uint32_t* media) {
  if (r.body_length < 8) return false;
  *media = rd32(r.body + 4);
  return true;
}

/**
 * Generic NACK (RFC 4585 §6.2.1): calls `f(seq)` for every lost sequence
 * number; returns how many, or -1 when malformed.
 */
template <typename F>
inline int for_each_nack(const RtcpPacket& r, F f) {
  if (r.type != RTCP_RTPFB || r.count != 1 || r.body_length < 8) return -1;
  int n = 0;
  for (size_t off = 8; off + 4 <= r.body_length; off += 4) {
    uint16_t pid = rd16(r.body + off);
    uint16_t blp = rd16(r.body + off + 2);
    f(pid);
    n++;
    for (int b = 0; b < 16; b++) {
      if (blp & (1 << b)) {
        f((uint16_t)(pid + b + 1));
        n++;
      }
    }
  }
  return n;
}

/** FIR (RFC 5104 §4.3.1): calls `f(ssrc, seq)` per entry. */
template <typename F>
inline int for_each_fir(const RtcpPacket& r, F f) {
  if (r.type != RTCP_PSFB || r.count != 4 || r.body_length < 8) return -1;
  int n = 0;
  for (size_t off = 8; off + 8 <= r.body_length; off += 8) {
    f(rd32(r.body + off), r.body[off + 4]);
    n++;
  }
  return n;
}

/** REMB (draft-alvestrand-rmcat-remb): the bitrate in bit/s, or -1 when this is not a well-formed REMB. */
inline double parse_remb(const RtcpPacket& r) {
  if (r.type != RTCP_PSFB || r.count != 15 || r.body_length < 16) return -1;
  const uint8_t* q = r.body + 8;
  if (q[0] != 'R' || q[1] != 'E' || q[2] != 'M' || q[3] != 'B') return -1;
  uint8_t exp = q[5] >> 2;
  uint32_t mantissa = ((uint32_t)(q[5] & 0x03) << 16) | rd16(q + 6);
  return (double)mantissa * (double)((uint64_t)1 << exp);
}

/**
 * Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1).
 * Calls `f(seq, received, arrival_us)` once per reported packet, in order;
 * arrival_us is relative to an arbitrary origin (reference time × 64 ms).
 * Returns the number of packets reported, or -1 when malformed (nothing
 * after the malformed point is reported).
 */
template <typename F>
inline int for_each_twcc(const RtcpPacket& r, F f) {
  if (r.type != RTCP_RTPFB || r.count != 15 || r.body_length < 16) return -1;
  const uint8_t* q = r.body;
  size_t n = r.body_length;
  uint16_t base = rd16(q + 8);
  size_t count = rd16(q + 10);
  int32_t ref = (int32_t)rd24(q + 12);
  if (ref & 0x800000) ref -= 0x1000000;
  // statuses first: 0 not received, 1 small delta, 2 large delta
  uint8_t status[8192];
  if (count > sizeof status) return -1;
  size_t got = 0;
  size_t off = 16;
  while (got < count) {
    if (off + 2 > n) return -1;
    uint16_t c = rd16(q + off);
    off += 2;
    if (!(c & 0x8000)) {  // run length
      uint8_t s = (c >> 13) & 0x03;
      size_t run = c & 0x1fff;
      for (size_t k = 0; k < run && got < count; k++) status[got++] = s;
    } else if (!(c & 0x4000)) {  // 14 one-bit symbols
      for (int k = 13; k >= 0 && got < count; k--) status[got++] = (c >> k) & 1;
    } else {  // 7 two-bit symbols
      for (int k = 6; k >= 0 && got < count; k--) status[got++] = (c >> (2 * k)) & 3;
    }
  }
  int64_t t = (int64_t)ref * 64000;
  for (size_t k = 0; k < count; k++) {
    uint16_t seq = (uint16_t)(base + k);
    uint8_t s = status[k];
    if (s == 1) {
      if (off + 1 > n) return -1;
      t += (int64_t)q[off] * 250;
      off += 1;
      f(seq, true, t);
    } else if (s == 2) {
      if (off + 2 > n) return -1;
      t += (int64_t)(int16_t)rd16(q + off) * 250;
      off += 2;
      f(seq, true, t);
    } else if (s == 0) {
      f(seq, false, (int64_t)0);
    } else {
      return -1;  // status 3 is reserved
    }
  }
  return (int)count;
}

// ---------------------------------------------------------------------------
// STUN (RFC 5389): just enough to route a binding request to its ICE agent.

/** True when this is a STUN message header with the magic cookie and a consistent length. */
inline bool is_stun(const uint8_t* p, size_t n) {
  if (n < 20 || (p[0] & 0xc0) != 0) return false;
  if (rd32(p + 4) != 0x2112A442) return false;
  size_t len = rd16(p + 2);
  return (len & 3) == 0 && 20 + len <= n;
}

/** A binding request (method 1, class request). */
inline bool is_stun_binding_request(const uint8_t* p, size_t n) { return is_stun(p, n) && rd16(p) == 0x0001; }

/**
 * The local part of the USERNAME attribute ("local:remote", the part before
 * the colon, as the receiver of the request sees it). Returns its length
 * (0 when absent or malformed) and points `*out` at it.
 */
inline size_t stun_local_ufrag(const uint8_t* p, size_t n, const uint8_t** out) {
  if (!is_stun(p, n)) return 0;
  size_t end = 20 + rd16(p + 2);
  size_t off = 20;
  while (off + 4 <= end) {
    uint16_t type = rd16(p + off);
    size_t len = rd16(p + off + 2);
    if (off + 4 + len > end) return 0;
    if (type == 0x0006) {
      const uint8_t* u = p + off + 4;
      for (size_t i = 0; i < len; i++) {
        if (u[i] == ':') {
          *out = u;
          return i;
        }
      }
      return 0;
    }
    off += 4 + ((len + 3) & ~(size_t)3);
  }
  return 0;
}

}  // namespace atrium
