// The packet plane; see plane.h for what it does and what it leaves to JavaScript.
#include "plane.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

namespace atrium {

static const size_t OUT_SLOTS = 256;
static const int RECV_BATCH = 32;
/** Batches read per poll() before the event loop gets a turn. */
static const int RECV_ROUNDS = 16;
static const size_t VIDEO_RING = 1024;
static const size_t CACHE_SLOTS = 1024;
static const double CACHE_AGE_MS = 1000;
static const double RESEND_GAP_MS = 40;
static const size_t TWCC_SLOTS = 8192;
static const size_t PENDING_MAX = 128;
/** A jump in sequence numbers larger than this is a restart, not loss. */
static const int MAX_GAP = 200;
/**
 * How far behind the newest packet a down-track's switch point may lag. The
 * switch point drops what a publisher sent before the last layer switch; on
 * the 16-bit circle it must follow the newest packet, or 32,768 packets
 * after a switch every packet compares as older than it and the subscriber
 * gets nothing more (the soak's stall in its fourth minute).
 */
static const int SWITCH_LAG = 0x4000;
static const size_t MAX_DATAGRAM = 1500;

struct Plane::RecvSlot {
  uint8_t data[2048];
  sockaddr_in from;
  char control[64];
  iovec iov;
};

Plane::Plane() : out_(OUT_SLOTS) {
  recv_ = new std::vector<RecvSlot>(RECV_BATCH);
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  rng_ ^= (uint32_t)t.tv_nsec ^ (uint32_t)getpid() << 16;
}

Plane::~Plane() {
  if (fd_ >= 0) ::close(fd_);
  delete recv_;
}

uint32_t Plane::random32() {
  // xorshift32: offsets only need to be unpredictable enough not to collide
  uint32_t x = rng_;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  rng_ = x;
  return x;
}

void Plane::clock() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  now_us_ = (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
  clock_gettime(CLOCK_REALTIME, &t);
  now_ms_ = (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

// ---------------------------------------------------------------------------
// events

void Plane::put16(uint16_t v) {
  events_.push_back((uint8_t)v);
  events_.push_back((uint8_t)(v >> 8));
}
void Plane::put32(uint32_t v) {
  for (int i = 0; i < 4; i++) events_.push_back((uint8_t)(v >> (8 * i)));
}
void Plane::putf64(double v) {
  uint8_t b[8];
  memcpy(b, &v, 8);  // little endian on the platforms Node supports here
  events_.insert(events_.end(), b, b + 8);
}
void Plane::ev_begin(uint8_t type) {
  ev_start_ = events_.size();
  events_.push_back(type);
  events_.push_back(0);
  events_.push_back(0);
  events_.push_back(0);
}
void Plane::ev_end() {
  size_t len = events_.size() - ev_start_ - 4;
  if (len > 0xffff) {  // cannot happen with the records above; drop rather than corrupt the stream
    events_.resize(ev_start_);
    return;
  }
  events_[ev_start_ + 2] = (uint8_t)len;
  events_[ev_start_ + 3] = (uint8_t)(len >> 8);
}

void Plane::take_events(std::vector<uint8_t>* out) {
  for (auto& kv : sessions_) flush_twcc_in(kv.second.get());
  out->swap(events_);
  events_.clear();
}

void Plane::flush_twcc_in(Session* s) {
  if (s->twcc_in_count == 0) return;
  ev_begin(EV_TWCC_IN);
  put32(s->id);
  put16(s->twcc_in_count);
  events_.insert(events_.end(), s->twcc_in.begin(), s->twcc_in.end());
  ev_end();
  s->twcc_in.clear();
  s->twcc_in_count = 0;
}

// ---------------------------------------------------------------------------
// socket

int Plane::open(int port, int min, int max, int recv_buffer, int send_buffer) {
  if (fd_ >= 0) return -EALREADY;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
  if (recv_buffer > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &recv_buffer, sizeof recv_buffer);
  if (send_buffer > 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  int err = 0;
  if (port > 0 || (min == 0 && max == 0)) {
    a.sin_port = htons((uint16_t)port);
    if (bind(fd, (sockaddr*)&a, sizeof a) != 0) err = errno;
  } else {
    if (min < 1 || max > 65535 || min > max) {
      ::close(fd);
      return -EINVAL;
    }
    int span = max - min + 1;
    int start = (int)(random32() % (uint32_t)span);
    err = EADDRINUSE;
    for (int i = 0; i < span; i++) {
      a.sin_port = htons((uint16_t)(min + (start + i) % span));
      if (bind(fd, (sockaddr*)&a, sizeof a) == 0) {
        err = 0;
        break;
      }
      if (errno != EADDRINUSE) {
        err = errno;
        break;
      }
    }
  }
  if (err) {
    ::close(fd);
    return -err;
  }
  socklen_t l = sizeof a;
  getsockname(fd, (sockaddr*)&a, &l);
  fd_ = fd;
  return ntohs(a.sin_port);
}

int Plane::poll() {
  if (fd_ < 0) return 0;
  clock();
  std::vector<RecvSlot>& r = *recv_;
  mmsghdr msgs[RECV_BATCH];
  int total = 0;
  for (int round = 0; round < RECV_ROUNDS; round++) {
    for (int i = 0; i < RECV_BATCH; i++) {
      RecvSlot& s = r[i];
      s.iov.iov_base = s.data;
      s.iov.iov_len = sizeof s.data;
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_name = &s.from;
      msgs[i].msg_hdr.msg_namelen = sizeof s.from;
      msgs[i].msg_hdr.msg_iov = &s.iov;
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_control = s.control;
      msgs[i].msg_hdr.msg_controllen = sizeof s.control;
      msgs[i].msg_len = 0;
    }
    int n = recvmmsg(fd_, msgs, RECV_BATCH, MSG_DONTWAIT, nullptr);
    if (n <= 0) break;
    total += n;
    for (int i = 0; i < n; i++) {
      RecvSlot& s = r[i];
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) continue;  // larger than any RTP we forward
      in_addr local{};
      bool has_local = false;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
          in_pktinfo pi;
          memcpy(&pi, CMSG_DATA(c), sizeof pi);
          local = pi.ipi_addr;
          has_local = true;
        }
      }
      receive(s.data, msgs[i].msg_len, s.from, has_local ? &local : nullptr);
    }
    flush();
    if (n < RECV_BATCH) break;
  }
  return total;
}

OutPacket* Plane::queue_slot() {
  if (out_count_ == OUT_SLOTS) flush();
  return &out_[out_count_++];
}

void Plane::flush() {
  if (out_count_ == 0) return;
  if (fd_ < 0) {
    if (capture_)
      for (size_t i = 0; i < out_count_; i++) capture_(out_[i]);
    out_count_ = 0;
    return;
  }
  mmsghdr msgs[OUT_SLOTS];
  iovec iov[OUT_SLOTS];
  union Ctl {
    char buf[CMSG_SPACE(sizeof(in_pktinfo))];
    cmsghdr align;
  };
  static Ctl ctl[OUT_SLOTS];
  for (size_t i = 0; i < out_count_; i++) {
    OutPacket& o = out_[i];
    iov[i].iov_base = o.data;
    iov[i].iov_len = o.len;
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_name = &o.to;
    msgs[i].msg_hdr.msg_namelen = sizeof o.to;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    if (o.has_from) {
      // reply from the address the peer sends to (a host with several addresses)
      memset(&ctl[i], 0, sizeof ctl[i]);
      msgs[i].msg_hdr.msg_control = ctl[i].buf;
      msgs[i].msg_hdr.msg_controllen = sizeof ctl[i].buf;
      cmsghdr* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr);
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      in_pktinfo pi{};
      pi.ipi_spec_dst = o.from;
      memcpy(CMSG_DATA(c), &pi, sizeof pi);
    }
  }
  size_t done = 0;
  while (done < out_count_) {
    int n = sendmmsg(fd_, msgs + done, (unsigned)(out_count_ - done), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      // EAGAIN (the send buffer is full) or an error for the first packet: drop it, keep the rest
      send_drops_++;
      done++;
      continue;
    }
    done += (size_t)n;
  }
  out_count_ = 0;
}

void Plane::send_now(OutPacket* o) {
  if (fd_ < 0) {
    if (capture_) capture_(*o);
    return;
  }
  msghdr m{};
  iovec iov{o->data, o->len};
  m.msg_name = &o->to;
  m.msg_namelen = sizeof o->to;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  union {
    char buf[CMSG_SPACE(sizeof(in_pktinfo))];
    cmsghdr align;
  } ctl;
  if (o->has_from) {
    memset(&ctl, 0, sizeof ctl);
    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof ctl.buf;
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
    in_pktinfo pi{};
    pi.ipi_spec_dst = o->from;
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
  }
  if (sendmsg(fd_, &m, MSG_DONTWAIT) < 0) send_drops_++;
}

// ---------------------------------------------------------------------------
// sessions

Session* Plane::session(uint32_t id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

uint32_t Plane::create_session() {
  uint32_t id = next_id_++;
  auto s = std::make_unique<Session>();
  s->id = id;
  sessions_[id] = std::move(s);
  return id;
}

void Plane::close_session(uint32_t id) {
  Session* s = session(id);
  if (!s) return;
  for (auto it = addresses_.begin(); it != addresses_.end();) {
    if (it->second.session == s)
      it = addresses_.erase(it);
    else
      ++it;
  }
  std::vector<uint32_t> ups;
  std::vector<uint32_t> downs;
  for (auto& kv : ups_)
    if (kv.second->session == s) ups.push_back(kv.first);
  for (auto& kv : downs_)
    if (kv.second->session == s) downs.push_back(kv.first);
  for (uint32_t d : downs) close_down(d);
  for (uint32_t u : ups) close_up(u);
  // queued packets may point at this session's remote only by value: nothing to undo
  sessions_.erase(id);
}

bool Plane::bind_address(uint32_t id, const sockaddr_in& a) {
  Session* s = session(id);
  if (!s) return false;
  auto& b = addresses_[address_key(a)];
  if (b.session && b.session != s) return false;  // first come: another peer connection uses this address
  b.session = s;
  return true;
}

bool Plane::set_remote(uint32_t id, const sockaddr_in& a) {
  Session* s = session(id);
  if (!s) return false;
  auto& b = addresses_[address_key(a)];
  if (!b.session) b.session = s;
  if (b.session != s) return false;
  s->remote = a;
  s->has_remote = true;
  return true;
}

bool Plane::srtp_state(uint32_t id, std::vector<uint32_t>* out) {
  Session* s = session(id);
  if (!s || !s->keyed) return false;
  out->clear();
  out->push_back(s->rtcp_index);
  for (auto& kv : s->in_rtp) {
    if (!kv.second.started) continue;
    out->push_back(kv.first);
    out->push_back(kv.second.roc);
    out->push_back(kv.second.s_l);
  }
  return true;
}

bool Plane::resume_srtp(uint32_t id, const uint32_t* state, size_t n, uint32_t rtcp_margin) {
  Session* s = session(id);
  if (!s || !s->keyed || n < 1 || (n - 1) % 3 != 0 || (n - 1) / 3 > 64) return false;
  s->rtcp_index = state[0] + rtcp_margin;
  for (size_t i = 1; i + 2 < n; i += 3) {
    if (state[i + 2] > 0xffff) return false;
    InboundState st;
    st.started = true;  // the replay window starts with the first packet that authenticates
    st.roc = state[i + 1];
    st.s_l = (uint16_t)state[i + 2];
    s->in_rtp[state[i]] = st;
  }
  return true;
}

bool Plane::set_keys(uint32_t id, int profile, const uint8_t* lk, const uint8_t* ls, const uint8_t* rk, const uint8_t* rs, size_t key_len, size_t salt_len) {
  Session* s = session(id);
  if (!s) return false;
  if (!s->out.init(profile, lk, key_len, ls, salt_len) || !s->in.init(profile, rk, key_len, rs, salt_len)) {
    s->keyed = false;
    return false;
  }
  // a new DTLS handshake starts every SRTP context afresh
  s->in_rtp.clear();
  s->in_rtcp.clear();
  s->rtcp_index = 0;
  for (auto& kv : s->ssrc_down) kv.second->out = kv.second->rtx_out = OutboundState();
  s->keyed = true;
  clock();
  std::vector<std::vector<uint8_t>> pending;
  pending.swap(s->pending);
  for (auto& p : pending) handle_media(s, p.data(), p.size());
  flush();
  return true;
}

bool Plane::set_extensions(uint32_t id, int mid, int rid, int rrid, int twcc, int level) {
  Session* s = session(id);
  if (!s) return false;
  s->ext_mid = mid;
  s->ext_rid = rid;
  s->ext_rrid = rrid;
  s->ext_twcc = twcc;
  s->ext_level = level;
  return true;
}

int Plane::send_plain(uint32_t id, const uint8_t* data, size_t len, const sockaddr_in& to) {
  if (len > sizeof(OutPacket::data)) return -EMSGSIZE;
  Session* s = id ? session(id) : nullptr;
  OutPacket o;
  memcpy(o.data, data, len);
  o.len = len;
  o.to = to;
  o.has_from = false;
  auto& b = addresses_[address_key(to)];
  if (!b.session && s) b.session = s;
  if (b.has_local) {
    o.from = b.local;
    o.has_from = true;
  }
  if (!b.session) addresses_.erase(address_key(to));
  send_now(&o);
  return (int)len;
}

int Plane::send_rtcp(uint32_t id, const uint8_t* data, size_t len) {
  Session* s = session(id);
  if (!s || !s->keyed || !s->has_remote) return -ENOTCONN;
  if (len < 8 || len + 20 > sizeof(OutPacket::data)) return -EMSGSIZE;
  OutPacket o;
  memcpy(o.data, data, len);
  size_t n = s->out.protect_rtcp(o.data, len, ++s->rtcp_index);
  if (!n) return -EPROTO;
  o.len = n;
  o.to = s->remote;
  auto it = addresses_.find(address_key(s->remote));
  o.has_from = it != addresses_.end() && it->second.has_local;
  if (o.has_from) o.from = it->second.local;
  s->packets_out++;
  s->bytes_out += n;
  send_now(&o);
  return (int)n;
}

// ---------------------------------------------------------------------------
// receive path

void Plane::receive(uint8_t* data, size_t len, const sockaddr_in& from, const in_addr* local) {
  if (now_ms_ == 0) clock();
  uint64_t key = address_key(from);
  auto it = addresses_.find(key);
  Session* s = nullptr;
  if (it != addresses_.end()) {
    s = it->second.session;
    if (local) {
      it->second.local = *local;
      it->second.has_local = true;
    }
  }
  switch (classify(data, len)) {
    case Datagram::media:
      if (!s) {
        unknown_media_++;  // media from an address no ICE check has validated
        return;
      }
      s->packets_in++;
      s->bytes_in += len;
      if (!s->keyed) {
        if (s->pending.size() < PENDING_MAX) s->pending.emplace_back(data, data + len);
        return;
      }
      handle_media(s, data, len);
      return;
    case Datagram::stun:
    case Datagram::dtls: {
      // to JavaScript: [session u32][ip u32 (network order bytes)][port u16][local ip u32][length u16][data]
      if (len > 0xffff) return;
      auto& d = datagrams_;
      uint32_t sid = s ? s->id : 0;
      for (int i = 0; i < 4; i++) d.push_back((uint8_t)(sid >> (8 * i)));
      const uint8_t* ip = (const uint8_t*)&from.sin_addr.s_addr;
      d.insert(d.end(), ip, ip + 4);
      uint16_t port = ntohs(from.sin_port);
      d.push_back((uint8_t)port);
      d.push_back((uint8_t)(port >> 8));
      const uint8_t* lip = local ? (const uint8_t*)&local->s_addr : nullptr;
      for (int i = 0; i < 4; i++) d.push_back(lip ? lip[i] : 0);
      d.push_back((uint8_t)len);
      d.push_back((uint8_t)(len >> 8));
      d.insert(d.end(), data, data + len);
      return;
    }
    default:
      return;
  }
}

void Plane::handle_media(Session* s, uint8_t* data, size_t len) {
  if (is_rtcp(data, len)) {
    if (len < 8) return;
    uint32_t ssrc = rd32(data + 4);
    uint32_t index = 0;
    size_t n = s->in.unprotect_rtcp(data, len, &index);
    if (!n) {
      s->auth_failures++;
      return;
    }
    ReplayWindow& w = s->in_rtcp[ssrc];
    if (w.check(index)) {
      s->replays++;
      return;
    }
    w.accept(index);
    handle_rtcp(s, data, n);
    return;
  }
  // The header is in the clear: read what the index needs, then decrypt and parse properly.
  if (len < 12) return;
  size_t tag = s->in.rtp_overhead();
  RtpHeader h;
  if (len < tag || !parse_rtp(data, len - tag, &h)) {
    // padding cannot be checked before decryption: parse the header without it
    if (len < tag + 12) return;
    uint8_t saved = data[0];
    data[0] &= ~0x20;
    bool ok = parse_rtp(data, len - tag, &h);
    data[0] = saved;
    if (!ok) return;
  }
  auto st = s->in_rtp.find(h.ssrc);
  if (st == s->in_rtp.end()) {
    if (s->in_rtp.size() >= 64) return;  // far more SSRCs than any peer connection here carries
    st = s->in_rtp.emplace(h.ssrc, InboundState()).first;
  }
  uint32_t roc = 0;
  uint64_t index = st->second.estimate(h.seq, &roc);
  if (st->second.started && st->second.window.check(index)) {
    s->replays++;
    return;
  }
  size_t n = s->in.unprotect_rtp(data, len, h.header_length, h.ssrc, h.seq, roc);
  if (!n) {
    s->auth_failures++;
    return;
  }
  st->second.accept(h.seq, roc);
  if (!parse_rtp(data, n, &h)) return;
  UpTrack* t = nullptr;
  int layer = 0;
  bool rtx = false;
  auto r = s->ssrc_up.find(h.ssrc);
  if (r != s->ssrc_up.end()) {
    t = r->second.first;
    layer = r->second.second;
  } else if ((r = s->ssrc_rtx.find(h.ssrc)) != s->ssrc_rtx.end()) {
    t = r->second.first;
    layer = r->second.second;
    rtx = true;
  } else if (!bind_ssrc(s, data, h, &t, &layer, &rtx)) {
    s->unroutable++;
    return;
  }
  if (rtx)
    handle_rtx(s, t, layer, data, n, h);
  else
    on_up_packet(s, t, layer, data, n, h, true);
}

static int rtx_apt(const UpTrack* t, uint8_t pt) {
  for (auto& p : t->rtx_pts)
    if (p.first == pt) return p.second;
  return -1;
}

void Plane::handle_rtx(Session* s, UpTrack* t, int li, uint8_t* p, size_t n, const RtpHeader& h) {
  UpLayer& L = t->layers[(size_t)li];
  int apt = rtx_apt(t, h.pt);
  if (apt < 0 || !L.bound) {
    s->unroutable++;
    return;
  }
  if (h.payload_length < 2) {
    // padding only (the publisher probing its bandwidth): its arrival counts for the feedback, nothing to forward
    record_twcc(s, p, h);
    L.rtx_padding++;
    return;
  }
  uint16_t osn = rd16(p + h.header_length);
  // Already here (the answer to a NACK whose packet came late, or the publisher padding with old packets): drop it.
  bool have = false;
  if (L.seq_started) {
    int d = seq_diff(osn, L.max_seq);
    if (d <= 0 && (d <= -(int)VIDEO_RING || !t->video)) have = true;  // too old to matter, or audio (no cache)
    else if (d <= 0 && !L.ring.empty()) {
      const SrcSlot& slot = L.ring[osn & (VIDEO_RING - 1)];
      have = slot.no != 0 && slot.seq == osn;
    }
  }
  if (have) {
    record_twcc(s, p, h);
    L.rtx_unneeded++;
    return;
  }
  // RFC 4588 §4: the original sequence number, then the original payload. Rewrite in place as the original packet
  // (its header extensions, transport-cc included, kept), without the RTX padding.
  size_t plen = h.payload_length - 2;
  memmove(p + h.header_length, p + h.header_length + 2, plen);
  p[0] &= (uint8_t)~0x20;
  p[1] = (uint8_t)((p[1] & 0x80) | (apt & 0x7f));
  wr16(p + 2, osn);
  wr32(p + 8, L.ssrc);
  RtpHeader o;
  if (!parse_rtp(p, h.header_length + plen, &o)) return;
  L.rtx_recovered++;
  on_up_packet(s, t, li, p, h.header_length + plen, o, true, true);
}

void Plane::record_twcc(Session* s, const uint8_t* p, const RtpHeader& h) {
  const uint8_t* v;
  size_t vl;
  if (!s->ext_twcc || !find_extension(p, h, s->ext_twcc, &v, &vl) || vl < 2) return;
  uint16_t tseq = rd16(v);
  uint8_t rec[10];
  rec[0] = (uint8_t)tseq;
  rec[1] = (uint8_t)(tseq >> 8);
  double us = (double)now_us_;
  memcpy(rec + 2, &us, 8);
  s->twcc_in.insert(s->twcc_in.end(), rec, rec + 10);
  if (++s->twcc_in_count >= 4000) flush_twcc_in(s);
}

bool Plane::bind_ssrc(Session* s, const uint8_t* p, const RtpHeader& h, UpTrack** out, int* layer_out, bool* rtx_out) {
  const uint8_t* v;
  size_t vl;
  UpTrack* t = nullptr;
  if (s->ext_mid && find_extension(p, h, s->ext_mid, &v, &vl)) {
    std::string mid((const char*)v, vl);
    for (UpTrack* u : s->ups)
      if (u->mid == mid) t = u;
  }
  if (!t) {
    for (UpTrack* u : s->ups)
      if (std::find(u->pts.begin(), u->pts.end(), h.pt) != u->pts.end() || rtx_apt(u, h.pt) >= 0) t = u;
  }
  if (!t || t->layers.empty()) return false;
  // A retransmission stream (RFC 4588): named by the repaired-rtp-stream-id extension (simulcast), or by its payload type.
  bool rrid = s->ext_rrid && find_extension(p, h, s->ext_rrid, &v, &vl);
  if (rrid || rtx_apt(t, h.pt) >= 0) {
    if (rtx_apt(t, h.pt) < 0) return false;  // RTX the answer did not negotiate
    int layer = -1;
    if (rrid) {
      std::string rid((const char*)v, vl);
      for (size_t i = 0; i < t->layers.size(); i++)
        if (t->layers[i].rid == rid) layer = (int)i;
    } else {
      // no rrid: the first layer without an RTX stream yet (one encoding, or SSRCs the SDP did not list)
      for (size_t i = 0; i < t->layers.size() && layer < 0; i++)
        if (!t->layers[i].rtx_ssrc) layer = (int)i;
    }
    if (layer < 0 || s->ssrc_rtx.size() >= 64) return false;
    UpLayer& L = t->layers[(size_t)layer];
    if (L.rtx_ssrc) s->ssrc_rtx.erase(L.rtx_ssrc);  // the publisher changed this layer's RTX SSRC
    L.rtx_ssrc = h.ssrc;
    s->ssrc_rtx[h.ssrc] = {t, layer};
    *out = t;
    *layer_out = layer;
    *rtx_out = true;
    return true;
  }
  *rtx_out = false;
  int layer = -1;
  if (s->ext_rid && find_extension(p, h, s->ext_rid, &v, &vl)) {
    std::string rid((const char*)v, vl);
    for (size_t i = 0; i < t->layers.size(); i++)
      if (t->layers[i].rid == rid) layer = (int)i;
  } else {
    // no rid: the first layer not bound yet (one encoding, or SSRCs the SDP did not list)
    for (size_t i = 0; i < t->layers.size() && layer < 0; i++)
      if (!t->layers[i].bound) layer = (int)i;
  }
  if (layer < 0) return false;
  UpLayer& L = t->layers[(size_t)layer];
  if (L.bound) s->ssrc_up.erase(L.ssrc);  // the publisher changed this layer's SSRC
  if (s->ssrc_up.size() >= 64) return false;
  L.ssrc = h.ssrc;
  L.bound = true;
  L.seq_started = false;
  s->ssrc_up[h.ssrc] = {t, layer};
  ev_begin(EV_SSRC);
  put32(t->id);
  put8((uint8_t)layer);
  put32(h.ssrc);
  ev_end();
  *out = t;
  *layer_out = layer;
  return true;
}

void Plane::on_up_packet(Session* s, UpTrack* t, int li, uint8_t* p, size_t n, const RtpHeader& h, bool from_peer, bool repaired) {
  UpLayer& L = t->layers[(size_t)li];
  const uint8_t* payload = p + h.header_length;
  size_t plen = h.payload_length;
  // receive statistics (RFC 3550 A.3, A.8)
  L.packets++;
  L.bytes += plen;
  if (plen > 0) L.last_media_ms = now_ms_;
  if (!L.seq_started) {
    L.seq_started = true;
    L.max_seq = h.seq;
    L.base_seq = h.seq;
    L.cycles = 0;
  } else {
    int d = seq_diff(h.seq, L.max_seq);
    if (d > 0) {
      if (d > 1 && d <= MAX_GAP && t->video) {
        ev_begin(EV_GAP);
        put32(t->id);
        put8((uint8_t)li);
        put16((uint16_t)(L.max_seq + 1));
        put16((uint16_t)(d - 1));
        ev_end();
      }
      if (h.seq < L.max_seq) L.cycles += 0x10000;
      L.max_seq = h.seq;
    } else if (d < 0) {
      L.late++;
      if (t->video && d > -MAX_GAP * 4) {
        ev_begin(EV_RECOVERED);
        put32(t->id);
        put8((uint8_t)li);
        put16(h.seq);
        ev_end();
      }
    }
  }
  if (!repaired) {
    double arrival = now_ms_ * t->clock / 1000.0;
    double transit = arrival - (double)h.ts;
    if (L.have_transit) {
      double dd = fabs(transit - L.last_transit);
      if (dd > 2147483647.0) dd = 0;  // timestamp wrap
      L.jitter += (dd - L.jitter) / 16;
    }
    L.last_transit = transit;
    L.have_transit = true;
  }
  const uint8_t* v;
  size_t vl;
  if (from_peer) record_twcc(s, p, h);
  if (!t->video && from_peer && s->ext_level && find_extension(p, h, s->ext_level, &v, &vl) && vl >= 1) {
    int level = v[0] & 0x7f;
    if (now_ms_ - t->level_at > 300 || level < t->level) {
      t->level = level;
      t->level_at = now_ms_;
    }
  }
  if (plen > MAX_DATAGRAM) return;
  // keep the payload: the NACK cache answers from here, and every down-track copies from it
  SrcSlot* slot;
  if (t->video) {
    if (L.ring.empty()) L.ring.resize(VIDEO_RING);
    slot = &L.ring[h.seq & (VIDEO_RING - 1)];
  } else {
    if (L.ring.empty()) L.ring.resize(1);
    slot = &L.ring[0];
  }
  slot->no = L.next_no++;
  slot->seq = h.seq;
  slot->ts = h.ts;
  slot->marker = h.marker;
  slot->len = (uint16_t)plen;
  memcpy(slot->data, payload, plen);
  slot->keyframe = false;
  slot->pic = slot->tl0 = -1;
  if (t->video && plen > 0) {
    if (t->codec == Codec::vp8) {
      Vp8Descriptor d;
      if (parse_vp8(slot->data, plen, &d)) {
        slot->keyframe = d.keyframe;
        slot->pic = d.picture_id;
        slot->pic_bits = d.picture_id_bits;
        slot->pic_off = d.picture_id_offset;
        slot->tl0 = d.tl0picidx;
        slot->tl0_off = d.tl0_offset;
        if (d.keyframe && d.width) {
          L.width = d.width;
          L.height = d.height;
        }
      }
    } else {
      slot->keyframe = keyframe_start(t->codec, slot->data, plen);
    }
    if (slot->keyframe) {
      L.keyframes++;
      ev_begin(EV_KEYFRAME);
      put32(t->id);
      put8((uint8_t)li);
      put16((uint16_t)L.width);
      put16((uint16_t)L.height);
      ev_end();
    }
  }
  if (t->tapped && plen > 0) {
    // padding-only packets (bandwidth probes) are not media: taps never see them
    ev_begin(EV_TAP);
    put32(t->id);
    put8((uint8_t)li);
    put8((uint8_t)((h.marker ? 1 : 0) | (slot->keyframe ? 2 : 0)));
    putf64(now_ms_);
    put16(h.seq);
    put32(h.ts);
    put32(h.ssrc);
    put8(h.pt);
    events_.insert(events_.end(), payload, payload + plen);
    ev_end();
  }
  // fan out; a sink closed meanwhile is removed from the vector by close_down, so index carefully
  for (size_t i = 0; i < t->sinks.size(); i++) forward(t->sinks[i], li, slot, plen == 0, h.seq, h.ts, h.marker);
}

void Plane::rebase(DownTrack* d, const SrcSlot* slot, uint16_t seq, uint32_t ts) {
  uint16_t next_seq = d->started ? (uint16_t)(d->last_seq + 1) : (uint16_t)random32();
  uint32_t next_ts;
  if (d->started) {
    double elapsed = (now_ms_ - d->last_time_ms) * d->up->clock / 1000.0;
    uint32_t e = elapsed < 1 ? 1 : (uint32_t)llround(elapsed);
    next_ts = d->last_ts + e;
  } else {
    next_ts = random32();
  }
  d->seq_offset = (uint16_t)(next_seq - seq);
  d->ts_offset = next_ts - ts;
  d->switch_seq = seq;
  d->last_in = (uint16_t)(seq - 1);
  if (!d->started) {
    d->last_seq = (uint16_t)(next_seq - 1);
    d->last_ts = next_ts;
    d->last_time_ms = now_ms_;
  }
  d->started = true;
  if (slot && slot->pic >= 0) {
    int mask = slot->pic_bits == 7 ? 0x7f : 0x7fff;
    int next = d->pic_started ? ((d->last_pic + 1) & mask) : slot->pic;
    d->pic_offset = (next - slot->pic) & 0x7fff;
    d->last_pic = (next - 1) & mask;
    d->pic_started = true;
  }
  if (slot && slot->tl0 >= 0) {
    int next = d->tl0_started ? ((d->last_tl0 + 1) & 0xff) : slot->tl0;
    d->tl0_offset = (next - slot->tl0) & 0xff;
    d->last_tl0 = (next - 1) & 0xff;
    d->tl0_started = true;
  }
}

void Plane::forward(DownTrack* d, int layer, const SrcSlot* slot, bool padding, uint16_t seq, uint32_t ts, bool marker) {
  if (d->target < 0 || !d->up) return;
  Session* s = d->session;
  if (!s->keyed || !s->has_remote) return;
  if (padding) {
    // Padding (the publisher probing) is not forwarded; close the gap it would leave.
    if (layer == d->current && seq == (uint16_t)(d->last_in + 1)) {
      d->seq_offset = (uint16_t)(d->seq_offset - 1);
      d->last_in = seq;
    }
    return;
  }
  if (layer != d->current) {
    if (layer != d->target) return;
    if (d->video && !slot->keyframe) return;
    rebase(d, slot, seq, ts);
    d->current = layer;
    d->switches++;
    ev_begin(EV_SWITCHED);
    put32(d->id);
    put8((uint8_t)layer);
    ev_end();
  } else if (seq_diff(seq, d->switch_seq) < 0) {
    return;  // older than the switch point
  }
  uint16_t out_seq = (uint16_t)(seq + d->seq_offset);
  uint32_t out_ts = ts + d->ts_offset;
  bool newest = seq_diff(out_seq, d->last_seq) > 0;
  int pic = -1;
  int tl0 = -1;
  if (slot->pic >= 0) {
    int mask = slot->pic_bits == 7 ? 0x7f : 0x7fff;
    pic = (slot->pic + d->pic_offset) & mask;
  }
  if (slot->tl0 >= 0) tl0 = (slot->tl0 + d->tl0_offset) & 0xff;
  if (newest) {
    d->last_in = seq;
    if (seq_diff(seq, d->switch_seq) > SWITCH_LAG) d->switch_seq = (uint16_t)(seq - SWITCH_LAG);
    d->last_seq = out_seq;
    d->last_ts = out_ts;
    d->last_time_ms = now_ms_;
    if (pic >= 0) d->last_pic = pic;
    if (tl0 >= 0) d->last_tl0 = tl0;
  }
  d->packets++;
  d->bytes += slot->len;
  d->header_bytes += d->twcc_id > 0 ? 20 : 12;
  d->last_rtp_ts = d->last_ts;
  d->last_sent_ms = now_ms_;
  if (d->video) {
    if (d->cache.empty()) d->cache.resize(CACHE_SLOTS);
    CacheEntry& c = d->cache[out_seq & (CACHE_SLOTS - 1)];
    c.seq = out_seq;
    c.valid = true;
    c.ts = out_ts;
    c.marker = marker;
    c.pic = pic;
    c.tl0 = tl0;
    c.layer = (uint8_t)layer;
    c.slot = (uint32_t)(slot - d->up->layers[(size_t)layer].ring.data());
    c.no = slot->no;
    c.sent_ms = now_ms_;
    c.resent_ms = -1e18;
  }
  emit(d, out_seq, out_ts, marker, slot, pic, tl0, false);
}

void Plane::emit(DownTrack* d, uint16_t seq, uint32_t ts, bool marker, const SrcSlot* slot, int pic, int tl0, bool resend) {
  Session* s = d->session;
  // a retransmission goes on the subscriber's RTX stream when it has one (RFC 4588 §4: its own sequence, the original one first in the payload)
  bool rtx = resend && d->rtx_pt;
  size_t hl = (d->twcc_id > 0 ? 20 : 12) + (rtx ? 2 : 0);
  size_t room = sizeof(OutPacket::data) - s->out.rtp_overhead() - 4;
  if (hl + slot->len > room) return;
  uint16_t wire_seq = rtx ? d->rtx_seq++ : seq;
  uint32_t ssrc = rtx ? d->rtx_ssrc : d->ssrc;
  OutPacket* o = queue_slot();
  uint8_t* b = o->data;
  b[0] = d->twcc_id > 0 ? 0x90 : 0x80;
  b[1] = (uint8_t)((marker ? 0x80 : 0) | ((rtx ? d->rtx_pt : d->pt) & 0x7f));
  wr16(b + 2, wire_seq);
  wr32(b + 4, ts);
  wr32(b + 8, ssrc);
  size_t len = 12;
  if (d->twcc_id > 0) {
    uint16_t tseq = ++s->twcc_seq;
    b[12] = 0xbe;
    b[13] = 0xde;
    b[14] = 0;
    b[15] = 1;
    b[16] = (uint8_t)((d->twcc_id << 4) | 1);
    wr16(b + 17, tseq);
    b[19] = 0;
    len = 20;
    if (s->twcc_hist.empty()) s->twcc_hist.resize(TWCC_SLOTS);
    TwccSent& e = s->twcc_hist[tseq & (TWCC_SLOTS - 1)];
    e.seq = tseq;
    e.valid = true;
    e.sent_ms = now_ms_;
    e.size = (uint16_t)(hl + slot->len + s->out.rtp_overhead());
  }
  if (rtx) {
    wr16(b + len, seq);
    len += 2;
  }
  memcpy(b + len, slot->data, slot->len);
  if (pic >= 0 && slot->pic_off > 0) {
    uint8_t* q = b + len + slot->pic_off;
    if (slot->pic_bits == 15) {
      q[0] = (uint8_t)(0x80 | ((pic >> 8) & 0x7f));
      q[1] = (uint8_t)pic;
    } else {
      q[0] = (uint8_t)(pic & 0x7f);
    }
  }
  if (tl0 >= 0 && slot->tl0_off > 0) b[len + slot->tl0_off] = (uint8_t)tl0;
  size_t plain = len + slot->len;
  size_t header = rtx ? len - 2 : len;
  uint32_t roc = rtx ? d->rtx_out.roc_for(wire_seq) : d->out.roc_for(seq);
  size_t n = s->out.protect_rtp(b, plain, header, ssrc, wire_seq, roc);
  if (!n) {
    out_count_--;
    return;
  }
  o->len = n;
  o->to = s->remote;
  o->has_from = false;
  auto it = addresses_.find(address_key(s->remote));
  if (it != addresses_.end() && it->second.has_local) {
    o->from = it->second.local;
    o->has_from = true;
  }
  s->packets_out++;
  s->bytes_out += n;
  if (resend) d->resent++;
  if (rtx) d->rtx_sent++;
}

int Plane::probe(uint32_t id, int count, int size) {
  auto it = downs_.find(id);
  if (it == downs_.end()) return -1;
  DownTrack* d = it->second.get();
  Session* s = d->session;
  if (!d->video || !d->rtx_pt || !d->up || !d->started || d->current < 0 || !s->keyed || !s->has_remote) return 0;
  if (count > 64) count = 64;
  if (size < 1 || size > 255) return 0;
  clock();
  auto it_from = addresses_.find(address_key(s->remote));
  bool has_from = it_from != addresses_.end() && it_from->second.has_local;
  int sent = 0;
  for (int k = 0; k < count; k++) {
    OutPacket* o = queue_slot();
    uint8_t* b = o->data;
    uint16_t seq = d->rtx_seq++;
    b[0] = (uint8_t)(0xa0 | (d->twcc_id > 0 ? 0x10 : 0));  // V=2, padding
    b[1] = d->rtx_pt & 0x7f;
    wr16(b + 2, seq);
    wr32(b + 4, d->last_ts);
    wr32(b + 8, d->rtx_ssrc);
    size_t len = 12;
    if (d->twcc_id > 0) {
      uint16_t tseq = ++s->twcc_seq;
      b[12] = 0xbe;
      b[13] = 0xde;
      b[14] = 0;
      b[15] = 1;
      b[16] = (uint8_t)((d->twcc_id << 4) | 1);
      wr16(b + 17, tseq);
      b[19] = 0;
      len = 20;
      if (s->twcc_hist.empty()) s->twcc_hist.resize(TWCC_SLOTS);
      TwccSent& e = s->twcc_hist[tseq & (TWCC_SLOTS - 1)];
      e.seq = tseq;
      e.valid = true;
      e.sent_ms = now_ms_;
      e.size = (uint16_t)(len + size + s->out.rtp_overhead());
    }
    // RFC 3550 §5.1: padding, its last byte counts it (no payload, so no OSN: RFC 4588 §4 padding)
    memset(b + len, 0, (size_t)size);
    b[len + size - 1] = (uint8_t)size;
    size_t n = s->out.protect_rtp(b, len + size, len, d->rtx_ssrc, seq, d->rtx_out.roc_for(seq));
    if (!n) {
      out_count_--;
      break;
    }
    o->len = n;
    o->to = s->remote;
    o->has_from = has_from;
    if (has_from) o->from = it_from->second.local;
    s->packets_out++;
    s->bytes_out += n;
    d->probe_packets++;
    d->probe_bytes += (uint64_t)size;
    sent++;
  }
  flush();
  return sent;
}

void Plane::answer_nack(DownTrack* d, uint16_t seq) {
  if (d->cache.empty() || !d->up) return;
  CacheEntry& c = d->cache[seq & (CACHE_SLOTS - 1)];
  if (!c.valid || c.seq != seq || now_ms_ - c.sent_ms > CACHE_AGE_MS) return;
  if (now_ms_ - c.resent_ms < RESEND_GAP_MS) return;
  if (c.layer >= d->up->layers.size()) return;
  UpLayer& L = d->up->layers[c.layer];
  if (c.slot >= L.ring.size() || L.ring[c.slot].no != c.no) return;  // the payload is gone
  c.resent_ms = now_ms_;
  emit(d, c.seq, c.ts, c.marker, &L.ring[c.slot], c.pic, c.tl0, true);
}

void Plane::handle_rtcp(Session* s, const uint8_t* p, size_t n) {
  RtcpPacket r;
  size_t off = 0;
  int guard = 0;
  while (next_rtcp(p, n, off, &r) && guard++ < 64) {
    off += r.length;
    switch (r.type) {
      case RTCP_SR: {
        uint32_t ssrc;
        uint64_t ntp;
        uint32_t rtp;
        if (sender_info(r, &ssrc, &ntp, &rtp)) {
          auto it = s->ssrc_up.find(ssrc);
          if (it != s->ssrc_up.end()) {
            UpLayer& L = it->second.first->layers[(size_t)it->second.second];
            L.sr_mid = (uint32_t)(ntp >> 16);
            L.sr_at_ms = now_ms_;
            ev_begin(EV_SR);
            put32(it->second.first->id);
            put8((uint8_t)it->second.second);
            put32((uint32_t)(ntp >> 32));
            put32((uint32_t)ntp);
            put32(rtp);
            ev_end();
          }
        }
      }
        // an SR carries report blocks too
        [[fallthrough]];
      case RTCP_RR: {
        ReportBlock b;
        for (int i = 0; report_block(r, i, &b); i++) {
          auto it = s->ssrc_down.find(b.ssrc);
          if (it == s->ssrc_down.end()) continue;
          DownTrack* d = it->second;
          d->rr_fraction = b.fraction_lost / 256.0;
          d->rr_lost = b.packets_lost;
          d->rr_jitter = b.jitter;
        }
        break;
      }
      case RTCP_RTPFB: {
        uint32_t media;
        if (!feedback_media_ssrc(r, &media)) break;
        if (r.count == 1) {
          auto it = s->ssrc_down.find(media);
          if (it == s->ssrc_down.end()) break;
          DownTrack* d = it->second;
          uint64_t before = d->resent;
          int asked = for_each_nack(r, [&](uint16_t seq) { answer_nack(d, seq); });
          if (asked > 0) {
            d->nacks += (uint64_t)asked;
            ev_begin(EV_NACK);
            put32(d->id);
            put16((uint16_t)std::min(asked, 0xffff));
            put16((uint16_t)std::min<uint64_t>(d->resent - before, 0xffff));
            ev_end();
          }
        } else if (r.count == 15) {
          twcc_feedback(s, r);
        }
        break;
      }
      case RTCP_PSFB: {
        if (r.count == 1) {
          uint32_t media;
          if (!feedback_media_ssrc(r, &media)) break;
          auto it = s->ssrc_down.find(media);
          if (it == s->ssrc_down.end()) break;
          it->second->plis++;
          ev_begin(EV_PLI);
          put32(it->second->id);
          ev_end();
        } else if (r.count == 4) {
          for_each_fir(r, [&](uint32_t ssrc, uint8_t seq) {
            auto it = s->ssrc_down.find(ssrc);
            if (it == s->ssrc_down.end()) return;
            DownTrack* d = it->second;
            if (d->last_fir == seq) return;  // RFC 5104 repeats a request until it is answered
            d->last_fir = seq;
            d->firs++;
            ev_begin(EV_FIR);
            put32(d->id);
            put8(seq);
            ev_end();
          });
        } else if (r.count == 15) {
          double remb = parse_remb(r);
          if (remb >= 0) {
            s->remb = remb;
            ev_begin(EV_REMB);
            put32(s->id);
            putf64(remb);
            ev_end();
          }
        }
        break;
      }
      default:
        break;
    }
  }
}

void Plane::twcc_feedback(Session* s, const RtcpPacket& r) {
  if (s->twcc_hist.empty()) return;
  size_t start = events_.size();
  ev_begin(EV_TWCC_OUT);
  put32(s->id);
  size_t count_at = events_.size();
  put16(0);
  uint32_t count = 0;
  int n = for_each_twcc(r, [&](uint16_t seq, bool received, int64_t arrival) {
    const TwccSent& e = s->twcc_hist[seq & (TWCC_SLOTS - 1)];
    if (!e.valid || e.seq != seq || count >= 4000) return;
    put16(seq);
    put16(e.size);
    putf64(e.sent_ms);
    putf64(received ? (double)arrival : -1.0);
    count++;
  });
  if (n < 0 || count == 0) {
    events_.resize(start);
    return;
  }
  events_[count_at] = (uint8_t)count;
  events_[count_at + 1] = (uint8_t)(count >> 8);
  ev_end();
}

// ---------------------------------------------------------------------------
// tracks

uint32_t Plane::create_up(uint32_t sid, Codec codec, bool video, uint32_t clock, const std::string& mid, const std::vector<std::string>& rids,
                          const std::vector<uint32_t>& ssrcs, const std::vector<uint8_t>& pts) {
  Session* s = sid ? session(sid) : nullptr;
  if (sid && !s) return 0;
  if (clock == 0) return 0;
  auto t = std::make_unique<UpTrack>();
  t->id = next_id_++;
  t->session = s;
  t->codec = codec;
  t->video = video;
  t->clock = clock;
  t->mid = mid;
  t->pts = pts;
  size_t layers = std::max<size_t>(1, std::max(rids.size(), ssrcs.size()));
  if (layers > 8) return 0;
  t->layers.resize(layers);
  for (size_t i = 0; i < rids.size(); i++) t->layers[i].rid = rids[i];
  UpTrack* raw = t.get();
  // a track without a session (a source stream's) keeps its SSRCs for the packets written to it
  for (size_t i = 0; i < ssrcs.size() && i < layers; i++) t->layers[i].ssrc = ssrcs[i];
  if (s) {
    for (size_t i = 0; i < ssrcs.size(); i++) {
      if (!ssrcs[i]) continue;
      t->layers[i].ssrc = ssrcs[i];
      t->layers[i].bound = true;
      s->ssrc_up[ssrcs[i]] = {raw, (int)i};
    }
    s->ups.push_back(raw);
  }
  uint32_t id = t->id;
  ups_[id] = std::move(t);
  return id;
}

void Plane::close_up(uint32_t id) {
  auto it = ups_.find(id);
  if (it == ups_.end()) return;
  UpTrack* t = it->second.get();
  for (DownTrack* d : t->sinks) {
    d->up = nullptr;
    d->target = d->current = -1;
  }
  if (Session* s = t->session) {
    s->ups.erase(std::remove(s->ups.begin(), s->ups.end(), t), s->ups.end());
    for (auto* map : {&s->ssrc_up, &s->ssrc_rtx})
      for (auto m = map->begin(); m != map->end();) {
        if (m->second.first == t)
          m = map->erase(m);
        else
          ++m;
      }
  }
  ups_.erase(it);
}

bool Plane::set_up_rtx(uint32_t id, const std::vector<std::pair<uint8_t, uint8_t>>& pts, const std::vector<uint32_t>& ssrcs) {
  auto it = ups_.find(id);
  if (it == ups_.end()) return false;
  UpTrack* t = it->second.get();
  if (pts.size() > 16) return false;
  for (auto& p : pts)
    if (p.first > 127 || p.second > 127) return false;
  t->rtx_pts = pts;
  Session* s = t->session;
  if (!s) return true;
  for (size_t i = 0; i < ssrcs.size() && i < t->layers.size(); i++) {
    if (!ssrcs[i] || s->ssrc_up.count(ssrcs[i]) || s->ssrc_rtx.size() >= 64) continue;
    UpLayer& L = t->layers[i];
    if (L.rtx_ssrc) s->ssrc_rtx.erase(L.rtx_ssrc);
    L.rtx_ssrc = ssrcs[i];
    s->ssrc_rtx[ssrcs[i]] = {t, (int)i};
  }
  return true;
}

bool Plane::set_tap(uint32_t id, bool on) {
  auto it = ups_.find(id);
  if (it == ups_.end()) return false;
  it->second->tapped = on;
  return true;
}

uint32_t Plane::create_down(uint32_t sid, uint32_t up, uint32_t ssrc, uint8_t pt, int twcc_id, uint32_t rtx_ssrc, uint8_t rtx_pt) {
  Session* s = session(sid);
  auto u = ups_.find(up);
  if (!s || u == ups_.end() || twcc_id < 0 || twcc_id > 14 || s->ssrc_down.count(ssrc)) return 0;
  if ((rtx_pt && (!rtx_ssrc || rtx_ssrc == ssrc)) || rtx_pt > 127) return 0;
  auto d = std::make_unique<DownTrack>();
  d->id = next_id_++;
  d->session = s;
  d->up = u->second.get();
  d->ssrc = ssrc;
  d->pt = pt;
  d->twcc_id = twcc_id;
  d->video = d->up->video;
  if (rtx_pt && d->video) {
    d->rtx_ssrc = rtx_ssrc;
    d->rtx_pt = rtx_pt;
    d->rtx_seq = (uint16_t)random32();
  }
  DownTrack* raw = d.get();
  d->up->sinks.push_back(raw);
  s->ssrc_down[ssrc] = raw;
  uint32_t id = d->id;
  downs_[id] = std::move(d);
  return id;
}

void Plane::detach_down(DownTrack* d) {
  if (d->up) {
    auto& v = d->up->sinks;
    v.erase(std::remove(v.begin(), v.end(), d), v.end());
    d->up = nullptr;
  }
}

void Plane::close_down(uint32_t id) {
  auto it = downs_.find(id);
  if (it == downs_.end()) return;
  DownTrack* d = it->second.get();
  detach_down(d);
  d->session->ssrc_down.erase(d->ssrc);
  downs_.erase(it);
}

bool Plane::set_target(uint32_t id, int layer) {
  auto it = downs_.find(id);
  if (it == downs_.end()) return false;
  DownTrack* d = it->second.get();
  if (!d->up || layer >= (int)d->up->layers.size()) layer = -1;
  d->target = layer < 0 ? -1 : layer;
  if (d->target < 0) d->current = -1;
  return true;
}

int Plane::write(uint32_t id, const uint8_t* data, size_t len) {
  auto it = ups_.find(id);
  if (it == ups_.end()) return -1;
  UpTrack* t = it->second.get();
  clock();
  int written = 0;
  uint8_t buf[12 + MAX_DATAGRAM];
  size_t o = 0;
  // records: layer u8, marker u8, seq u16, ts u32, length u16, then the payload (little endian)
  while (o + 10 <= len) {
    uint8_t layer = data[o];
    bool marker = data[o + 1] != 0;
    uint16_t seq = (uint16_t)(data[o + 2] | (data[o + 3] << 8));
    uint32_t ts = (uint32_t)data[o + 4] | ((uint32_t)data[o + 5] << 8) | ((uint32_t)data[o + 6] << 16) | ((uint32_t)data[o + 7] << 24);
    size_t plen = (size_t)(data[o + 8] | (data[o + 9] << 8));
    o += 10;
    if (plen > len - o) break;  // a truncated record: the rest of the batch is not trusted
    const uint8_t* payload = data + o;
    o += plen;
    if (layer >= t->layers.size() || plen == 0 || plen > MAX_DATAGRAM) continue;
    buf[0] = 0x80;
    buf[1] = (uint8_t)((marker ? 0x80 : 0) | ((t->pts.empty() ? 96 : t->pts[0]) & 0x7f));
    wr16(buf + 2, seq);
    wr32(buf + 4, ts);
    wr32(buf + 8, t->layers[layer].ssrc);
    memcpy(buf + 12, payload, plen);
    RtpHeader h;
    if (!parse_rtp(buf, 12 + plen, &h)) continue;
    on_up_packet(t->session, t, layer, buf, 12 + plen, h, false);
    written++;
  }
  flush();
  return written;
}

// ---------------------------------------------------------------------------
// statistics

bool Plane::up_stats(uint32_t id, std::vector<double>* out) {
  auto it = ups_.find(id);
  if (it == ups_.end()) return false;
  UpTrack* t = it->second.get();
  out->clear();
  clock();
  for (UpLayer& L : t->layers) {
    double expected = L.seq_started ? (double)(L.ext_max() - L.base_seq + 1) : 0;
    double fields[UP_LAYER_FIELDS] = {
        (double)L.ssrc,
        (double)L.packets,
        (double)L.bytes,
        expected,
        (double)L.late,
        L.jitter / t->clock,
        L.last_media_ms,
        (double)L.width,
        (double)L.height,
        (double)L.keyframes,
        (double)L.sr_mid,
        L.sr_at_ms,
        L.seq_started ? (double)L.ext_max() : -1,
        now_ms_ - t->level_at > 1000 ? 127.0 : (double)t->level,
        (double)L.rtx_recovered,
        (double)L.rtx_unneeded,
        (double)L.rtx_padding,
    };
    out->insert(out->end(), fields, fields + UP_LAYER_FIELDS);
  }
  return true;
}

bool Plane::down_stats(uint32_t id, std::vector<double>* out) {
  auto it = downs_.find(id);
  if (it == downs_.end()) return false;
  DownTrack* d = it->second.get();
  double fields[DOWN_FIELDS] = {
      (double)d->packets,   (double)d->bytes,      (double)d->header_bytes, (double)d->nacks,     (double)d->resent,    (double)d->plis,
      (double)d->firs,      (double)d->rr_lost,    d->rr_fraction,          (double)d->rr_jitter, (double)d->current,   (double)d->target,
      (double)d->last_rtp_ts, d->last_sent_ms,     (double)d->switches,     (double)d->ssrc,      d->started ? 1.0 : 0, (double)(d->up ? 1 : 0),
      (double)d->rtx_sent,    (double)d->probe_packets, (double)d->probe_bytes,
  };
  out->assign(fields, fields + DOWN_FIELDS);
  return true;
}

bool Plane::session_stats(uint32_t id, std::vector<double>* out) {
  Session* s = session(id);
  if (!s) return false;
  double fields[SESSION_FIELDS] = {
      (double)s->packets_in,    (double)s->bytes_in, (double)s->packets_out, (double)s->bytes_out,
      (double)s->auth_failures, (double)s->replays,  (double)s->unroutable,  s->remb,
      (double)s->twcc_seq,
  };
  out->assign(fields, fields + SESSION_FIELDS);
  return true;
}

}  // namespace atrium
