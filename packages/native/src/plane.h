// The packet plane of one media worker: the worker's UDP socket, every
// peer connection's SRTP keys once DTLS is done (a "session"), the
// publishers' tracks (up-tracks, one layer per simulcast encoding) and what
// each subscriber receives of them (down-tracks).
//
// Per packet it does, without calling JavaScript: batched receive
// (recvmmsg), SRTP/SRTCP unprotect, routing by SSRC (learning SSRCs from the
// MID/RID header extensions), RTX unwrapping (RFC 4588: a publisher's
// retransmission becomes the packet it repairs), receive statistics,
// per-subscriber rewrite
// (SSRC, payload type, sequence number, timestamp, VP8 picture id and
// TL0PICIDX so that a layer switch is seamless), SRTP protect, the NACK
// cache (answered on the subscriber's RTX stream when it negotiated one),
// transport-cc numbering, and batched send (sendmmsg).
//
// JavaScript keeps the decisions: which layer each down-track should get
// (set_target), keyframe requests, NACKs to publishers, bandwidth
// estimation. It gets the facts as batched events (drain()): SSRCs bound,
// keyframes, sequence gaps, layer switches, PLI/FIR/NACK/REMB/RR from
// subscribers, transport-cc arrival times (publishers) and resolved
// transport-cc feedback (subscribers). STUN and DTLS datagrams go to
// JavaScript at once (werift answers STUN binding requests, consent
// included, and runs DTLS); JavaScript sends its STUN, DTLS and RTCP
// through the same socket (send, send_rtcp).
//
// No threads: everything runs on the worker's event loop.
#pragma once
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "rtp.h"
#include "srtp.h"

namespace atrium {

/** Event records in the deferred buffer: [type u8][0 u8][length u16, bytes after this header] then the fields, little endian. */
enum EventType : uint8_t {
  EV_SSRC = 1,        // up u32, layer u8, ssrc u32
  EV_KEYFRAME = 2,    // up u32, layer u8, width u16, height u16
  EV_GAP = 3,         // up u32, layer u8, first seq u16, count u16
  EV_RECOVERED = 4,   // up u32, layer u8, seq u16
  EV_SWITCHED = 5,    // down u32, layer i8
  EV_PLI = 6,         // down u32
  EV_FIR = 7,         // down u32, seq u8
  EV_NACK = 8,        // down u32, asked u16, resent u16
  EV_REMB = 9,        // session u32, bitrate f64
  EV_TWCC_IN = 10,    // session u32, count u16, then count × (seq u16, arrival µs f64)
  EV_TWCC_OUT = 11,   // session u32, count u16, then count × (seq u16, size u16, sent ms f64, arrival µs f64 or -1 when lost)
  EV_TAP = 12,        // up u32, layer u8, flags u8 (1 marker, 2 keyframe start), arrival ms f64, seq u16, ts u32, ssrc u32, pt u8, then the payload
  EV_SR = 13,         // up u32, layer u8, ntp u64 (as two u32, high first), rtp u32
};

/** Stats vector layouts (Float64Array) — keep in step with packages/server/src/media/native/addon.ts. */
enum { UP_LAYER_FIELDS = 17 };
enum { DOWN_FIELDS = 21 };
enum { SESSION_FIELDS = 9 };

struct SrcSlot {
  uint64_t no = 0;  // 0: empty
  uint16_t seq = 0;
  uint32_t ts = 0;
  bool marker = false;
  bool keyframe = false;
  int pic = -1;
  int pic_bits = 0;
  size_t pic_off = 0;
  int tl0 = -1;
  size_t tl0_off = 0;
  uint16_t len = 0;
  uint8_t data[1500];
};

struct DownTrack;
struct Session;

struct UpLayer {
  uint32_t ssrc = 0;
  bool bound = false;
  std::string rid;
  uint64_t next_no = 1;
  std::vector<SrcSlot> ring;  // video: the NACK cache's payloads; audio: one scratch slot
  // RFC 3550 A.3 / A.8
  uint64_t packets = 0, bytes = 0;
  bool seq_started = false;
  uint16_t max_seq = 0;
  uint32_t cycles = 0;
  uint32_t base_seq = 0;
  double jitter = 0;
  double last_transit = 0;
  bool have_transit = false;
  double last_media_ms = 0;
  int width = 0, height = 0;
  uint64_t keyframes = 0;
  uint64_t late = 0;
  // RTX (RFC 4588): the repair stream's SSRC (0 until signalled or seen) and what came on it
  uint32_t rtx_ssrc = 0;
  uint64_t rtx_recovered = 0;  // repaired a packet missing here: unwrapped and forwarded
  uint64_t rtx_unneeded = 0;   // repaired one already here (a late answer, or the publisher probing with RTX): dropped
  uint64_t rtx_padding = 0;    // padding-only packets on the repair stream (the publisher's bandwidth probes)
  // last sender report (for RR's LSR / DLSR)
  uint32_t sr_mid = 0;
  double sr_at_ms = 0;
  uint64_t ext_max() const { return (uint64_t)cycles + max_seq; }
};

struct UpTrack {
  uint32_t id;
  Session* session;
  Codec codec;
  bool video;
  uint32_t clock;
  std::string mid;
  std::vector<uint8_t> pts;
  /** RTX payload types and the payload type each repairs (apt). */
  std::vector<std::pair<uint8_t, uint8_t>> rtx_pts;
  std::vector<UpLayer> layers;
  std::vector<DownTrack*> sinks;
  bool tapped = false;
  int level = 127;  // RFC 6464 -dBov, the loudest over ~300 ms
  double level_at = 0;
};

struct CacheEntry {
  uint16_t seq = 0;
  bool valid = false;
  uint32_t ts = 0;
  bool marker = false;
  int pic = -1;
  int tl0 = -1;
  uint8_t layer = 0;
  uint32_t slot = 0;
  uint64_t no = 0;
  double sent_ms = 0;
  double resent_ms = -1e18;
};

struct DownTrack {
  uint32_t id;
  Session* session;
  UpTrack* up;  // nullptr once the up-track closed
  uint32_t ssrc;
  uint8_t pt;
  int twcc_id;
  bool video;
  int target = -1;
  int current = -1;
  bool started = false;
  uint16_t seq_offset = 0, switch_seq = 0, last_seq = 0, last_in = 0;
  uint32_t ts_offset = 0, last_ts = 0;
  double last_time_ms = 0;
  bool pic_started = false;
  int pic_offset = 0, last_pic = 0;
  bool tl0_started = false;
  int tl0_offset = 0, last_tl0 = 0;
  OutboundState out;
  // the subscriber's RTX stream (RFC 4588), when it accepted one: NACKs are answered there
  uint32_t rtx_ssrc = 0;
  uint8_t rtx_pt = 0;
  uint16_t rtx_seq = 0;
  OutboundState rtx_out;
  uint64_t rtx_sent = 0;
  uint64_t probe_packets = 0, probe_bytes = 0;
  std::vector<CacheEntry> cache;
  uint64_t packets = 0, bytes = 0, header_bytes = 0, nacks = 0, resent = 0, plis = 0, firs = 0;
  int last_fir = -1;
  double rr_fraction = 0;
  int32_t rr_lost = 0;
  uint32_t rr_jitter = 0;
  double last_sent_ms = 0;
  uint32_t last_rtp_ts = 0;
  uint64_t switches = 0;
};

struct TwccSent {
  uint16_t seq;
  bool valid;
  uint16_t size;
  double sent_ms;
};

struct Session {
  uint32_t id;
  bool keyed = false;
  Direction in, out;
  std::unordered_map<uint32_t, InboundState> in_rtp;
  std::unordered_map<uint32_t, ReplayWindow> in_rtcp;
  uint32_t rtcp_index = 0;
  bool has_remote = false;
  sockaddr_in remote{};
  std::vector<UpTrack*> ups;
  std::unordered_map<uint32_t, std::pair<UpTrack*, int>> ssrc_up;
  std::unordered_map<uint32_t, std::pair<UpTrack*, int>> ssrc_rtx;  // a publisher's RTX streams -> the layer each repairs
  std::unordered_map<uint32_t, DownTrack*> ssrc_down;
  int ext_mid = 0, ext_rid = 0, ext_rrid = 0, ext_twcc = 0, ext_level = 0;
  uint16_t twcc_seq = 0;
  std::vector<TwccSent> twcc_hist;  // 8192 slots once the first packet is numbered
  std::vector<std::vector<uint8_t>> pending;  // media that arrived before the keys
  uint64_t packets_in = 0, bytes_in = 0, packets_out = 0, bytes_out = 0, auth_failures = 0, replays = 0, unroutable = 0;
  double remb = 0;
  std::vector<uint8_t> twcc_in;  // pending EV_TWCC_IN records (seq, arrival) for this session
  uint16_t twcc_in_count = 0;
};

/** One datagram to send. */
struct OutPacket {
  uint8_t data[1600];
  size_t len;
  sockaddr_in to;
  in_addr from;
  bool has_from;
};

class Plane {
 public:
  Plane();
  ~Plane();
  Plane(const Plane&) = delete;
  Plane& operator=(const Plane&) = delete;

  /** Binds the UDP socket (IPv4, any address): `port`, or a free one in [min, max], or any when both are 0. Returns the port, or -errno. */
  int open(int port, int min, int max, int recv_buffer, int send_buffer);
  int fd() const { return fd_; }
  /** Without a socket (fuzzing, tests): every datagram sent goes to this function instead. */
  void set_capture(std::function<void(const OutPacket&)> f) { capture_ = std::move(f); }

  /** Reads everything waiting on the socket (a bounded number of batches). Returns the number of datagrams read. */
  int poll();
  /** One datagram as if it arrived from `from` on local address `local` (the receive path without the socket). */
  void receive(uint8_t* data, size_t len, const sockaddr_in& from, const in_addr* local);
  /** Sends what the last receive queued. */
  void flush();

  // --- sessions
  uint32_t create_session();
  void close_session(uint32_t id);
  bool bind_address(uint32_t session, const sockaddr_in& addr);
  bool set_remote(uint32_t session, const sockaddr_in& addr);
  bool set_keys(uint32_t session, int profile, const uint8_t* lk, const uint8_t* ls, const uint8_t* rk, const uint8_t* rs, size_t key_len, size_t salt_len);
  bool set_extensions(uint32_t session, int mid, int rid, int rrid, int twcc, int level);
  /**
   * What a replacement worker needs to continue this session's SRTP with the
   * same keys and no new DTLS handshake (see resume_srtp): the SRTCP index
   * sent last, then (ssrc, rollover counter, highest sequence number) per
   * SSRC received so far.
   */
  bool srtp_state(uint32_t session, std::vector<uint32_t>* out);
  /**
   * After set_keys: continues from an srtp_state of the session's previous
   * worker — SRTCP numbering past the saved index plus `rtcp_margin` (what
   * was sent after the state was saved), and each SSRC's rollover counter, so
   * the peer's packets keep authenticating once its sequence numbers wrap.
   * False for an unknown or unkeyed session or a malformed state.
   */
  bool resume_srtp(uint32_t session, const uint32_t* state, size_t n, uint32_t rtcp_margin);
  /** A STUN/DTLS datagram from JavaScript; binds the destination to `session` when it is not bound yet. Returns bytes sent or -errno. */
  int send_plain(uint32_t session, const uint8_t* data, size_t len, const sockaddr_in& to);
  /** A compound RTCP packet from JavaScript, SRTCP-protected and sent to the session's remote. Returns bytes sent or -errno. */
  int send_rtcp(uint32_t session, const uint8_t* data, size_t len);

  // --- tracks
  uint32_t create_up(uint32_t session, Codec codec, bool video, uint32_t clock, const std::string& mid, const std::vector<std::string>& rids,
                     const std::vector<uint32_t>& ssrcs, const std::vector<uint8_t>& pts);
  /**
   * The RTX streams (RFC 4588) the publisher may send for this track: pairs
   * of (RTX payload type, the payload type it repairs), and per layer the
   * RTX SSRC when the SDP signals it (0: learnt from the
   * repaired-rtp-stream-id extension or the payload type). False for an
   * unknown track.
   */
  bool set_up_rtx(uint32_t up, const std::vector<std::pair<uint8_t, uint8_t>>& pts, const std::vector<uint32_t>& ssrcs);
  void close_up(uint32_t id);
  bool set_tap(uint32_t up, bool on);
  /** `rtx_ssrc`/`rtx_pt`: the subscriber's RTX stream (0: none; NACKs are answered on the media SSRC). */
  uint32_t create_down(uint32_t session, uint32_t up, uint32_t ssrc, uint8_t pt, int twcc_id, uint32_t rtx_ssrc = 0, uint8_t rtx_pt = 0);
  void close_down(uint32_t id);
  bool set_target(uint32_t down, int layer);
  /**
   * Bandwidth probe traffic on a down-track: up to `count` padding-only
   * packets of `size` bytes of padding (1..255) on the subscriber's RTX
   * stream, each with a transport-cc number like media, sent at once. Only
   * on RTX: padding on the media stream would shift its sequence numbers
   * under packets still to be repaired. Returns the packets sent (0 without
   * RTX, before the first media packet, or while nothing is forwarded), -1
   * for an unknown track.
   */
  int probe(uint32_t down, int count, int size);
  /**
   * Packets from a server-made source (not received from a peer), forwarded
   * like a publisher's: records of (layer u8, marker u8, seq u16, ts u32,
   * length u16, payload), little endian. Returns the packets taken, -1 for
   * an unknown track.
   */
  int write(uint32_t up, const uint8_t* data, size_t len);

  // --- facts for JavaScript
  std::vector<uint8_t>& datagrams() { return datagrams_; }
  /** Moves the pending events out (the caller owns them). */
  void take_events(std::vector<uint8_t>* out);
  size_t events_size() const { return events_.size(); }
  bool up_stats(uint32_t up, std::vector<double>* out);
  bool down_stats(uint32_t down, std::vector<double>* out);
  bool session_stats(uint32_t session, std::vector<double>* out);

  uint64_t send_drops() const { return send_drops_; }
  /** Media datagrams from addresses no session has (dropped). */
  uint64_t unknown_media() const { return unknown_media_; }

 private:
  Session* session(uint32_t id);
  void handle_media(Session* s, uint8_t* data, size_t len);
  void handle_rtcp(Session* s, const uint8_t* p, size_t n);
  /** `repaired`: unwrapped from RTX (late by nature: left out of the jitter). */
  void on_up_packet(Session* s, UpTrack* t, int layer, uint8_t* p, size_t n, const RtpHeader& h, bool from_peer, bool repaired = false);
  /** Binds an unknown SSRC to a layer; `*rtx` says whether it is the layer's RTX stream. */
  bool bind_ssrc(Session* s, const uint8_t* p, const RtpHeader& h, UpTrack** t, int* layer, bool* rtx);
  void handle_rtx(Session* s, UpTrack* t, int layer, uint8_t* p, size_t n, const RtpHeader& h);
  void record_twcc(Session* s, const uint8_t* p, const RtpHeader& h);
  void forward(DownTrack* d, int layer, const SrcSlot* slot, bool padding, uint16_t seq, uint32_t ts, bool marker);
  void rebase(DownTrack* d, const SrcSlot* slot, uint16_t seq, uint32_t ts);
  void emit(DownTrack* d, uint16_t seq, uint32_t ts, bool marker, const SrcSlot* slot, int pic, int tl0, bool resend);
  void answer_nack(DownTrack* d, uint16_t seq);
  OutPacket* queue_slot();
  void send_now(OutPacket* o);
  void twcc_feedback(Session* s, const RtcpPacket& r);
  void flush_twcc_in(Session* s);
  void detach_down(DownTrack* d);
  void clock();

  // event writing
  void ev_begin(uint8_t type);
  void ev_end();
  void put8(uint8_t v) { events_.push_back(v); }
  void put16(uint16_t v);
  void put32(uint32_t v);
  void putf64(double v);

  int fd_ = -1;
  std::function<void(const OutPacket&)> capture_;
  uint32_t next_id_ = 1;
  std::unordered_map<uint32_t, std::unique_ptr<Session>> sessions_;
  std::unordered_map<uint32_t, std::unique_ptr<UpTrack>> ups_;
  std::unordered_map<uint32_t, std::unique_ptr<DownTrack>> downs_;
  struct Binding {
    Session* session;
    in_addr local;
    bool has_local;
  };
  std::unordered_map<uint64_t, Binding> addresses_;
  std::vector<OutPacket> out_;
  size_t out_count_ = 0;
  std::vector<uint8_t> events_;
  size_t ev_start_ = 0;
  std::vector<uint8_t> datagrams_;
  double now_ms_ = 0;
  int64_t now_us_ = 0;
  uint64_t send_drops_ = 0;
  uint64_t unknown_media_ = 0;
  uint32_t rng_ = 0x9e3779b9;
  uint32_t random32();
  // receive buffers for recvmmsg
  struct RecvSlot;
  std::vector<RecvSlot>* recv_ = nullptr;
};

inline uint64_t address_key(const sockaddr_in& a) { return ((uint64_t)ntohl(a.sin_addr.s_addr) << 16) | ntohs(a.sin_port); }

}  // namespace atrium
