// The Node-API face of the packet plane (plane.h): one `Plane` object per
// media worker process, polled by libuv on the worker's event loop. Calls
// from JavaScript are per decision (a session, a track, a layer, an RTCP
// packet); packets never cross into JavaScript one by one: STUN/DTLS
// datagrams are handed over in one Buffer per loop iteration, everything
// else is drained by JavaScript's timer (drain()).
#include <arpa/inet.h>
#include <napi.h>
#include <uv.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "plane.h"
#include "srtp.h"

using namespace atrium;

namespace {

/** Events beyond this many bytes are handed over at once instead of waiting for drain(). */
const size_t EVENTS_EAGER = 1 << 20;

bool parse_ip(const Napi::Value& ip, const Napi::Value& port, sockaddr_in* out) {
  if (!ip.IsString() || !port.IsNumber()) return false;
  std::string s = ip.As<Napi::String>().Utf8Value();
  int p = port.As<Napi::Number>().Int32Value();
  if (p < 1 || p > 65535) return false;
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = htons((uint16_t)p);
  return inet_pton(AF_INET, s.c_str(), &out->sin_addr) == 1;
}

uint32_t u32(const Napi::CallbackInfo& info, size_t i) { return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().Uint32Value() : 0; }
int32_t i32(const Napi::CallbackInfo& info, size_t i, int32_t def = 0) { return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().Int32Value() : def; }

bool buffer(const Napi::Value& v, const uint8_t** data, size_t* len) {
  if (!v.IsBuffer() && !v.IsTypedArray()) return false;
  if (v.IsBuffer()) {
    auto b = v.As<Napi::Buffer<uint8_t>>();
    *data = b.Data();
    *len = b.Length();
    return true;
  }
  auto t = v.As<Napi::TypedArray>();
  if (t.TypedArrayType() != napi_uint8_array) return false;
  auto u = v.As<Napi::Uint8Array>();
  *data = u.Data();
  *len = u.ByteLength();
  return true;
}

Napi::Value fail(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value stats_array(Napi::Env env, const std::vector<double>& v) {
  auto a = Napi::Float64Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) a[i] = v[i];
  return a;
}

Codec codec_of(const std::string& s) {
  if (s == "vp8") return Codec::vp8;
  if (s == "vp9") return Codec::vp9;
  if (s == "h264") return Codec::h264;
  if (s == "opus") return Codec::opus;
  return Codec::unknown;
}

class PlaneWrap : public Napi::ObjectWrap<PlaneWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Plane",
                       {
                           InstanceMethod("open", &PlaneWrap::Open),
                           InstanceMethod("close", &PlaneWrap::Close),
                           InstanceMethod("createSession", &PlaneWrap::CreateSession),
                           InstanceMethod("closeSession", &PlaneWrap::CloseSession),
                           InstanceMethod("bindAddress", &PlaneWrap::BindAddress),
                           InstanceMethod("setRemote", &PlaneWrap::SetRemote),
                           InstanceMethod("setKeys", &PlaneWrap::SetKeys),
                           InstanceMethod("setExtensions", &PlaneWrap::SetExtensions),
                           InstanceMethod("srtpState", &PlaneWrap::SrtpState),
                           InstanceMethod("resumeSrtp", &PlaneWrap::ResumeSrtp),
                           InstanceMethod("send", &PlaneWrap::Send),
                           InstanceMethod("sendRtcp", &PlaneWrap::SendRtcp),
                           InstanceMethod("createUp", &PlaneWrap::CreateUp),
                           InstanceMethod("closeUp", &PlaneWrap::CloseUp),
                           InstanceMethod("setTap", &PlaneWrap::SetTap),
                           InstanceMethod("createDown", &PlaneWrap::CreateDown),
                           InstanceMethod("probe", &PlaneWrap::Probe),
                           InstanceMethod("closeDown", &PlaneWrap::CloseDown),
                           InstanceMethod("setTarget", &PlaneWrap::SetTarget),
                           InstanceMethod("write", &PlaneWrap::Write),
                           InstanceMethod("drain", &PlaneWrap::Drain),
                           InstanceMethod("upStats", &PlaneWrap::UpStats),
                           InstanceMethod("downStats", &PlaneWrap::DownStats),
                           InstanceMethod("sessionStats", &PlaneWrap::SessionStats),
                           InstanceMethod("info", &PlaneWrap::Info),
                       });
  }

  PlaneWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PlaneWrap>(info) {
    if (info.Length() < 1 || !info[0].IsFunction()) {
      Napi::TypeError::New(info.Env(), "new Plane(onDatagrams): onDatagrams must be a function").ThrowAsJavaScriptException();
      return;
    }
    on_datagrams_ = Napi::Persistent(info[0].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(info.Env(), "atrium:plane");
  }

  ~PlaneWrap() { stop(); }

 private:
  static void on_poll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<PlaneWrap*>(handle->data);
    if (status < 0 || !self) return;
    self->plane_.poll();
    self->deliver();
  }
  static void on_closed(uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); }

  void stop() {
    if (poll_) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), on_closed);
      poll_ = nullptr;
    }
  }

  /** Hands the STUN/DTLS datagrams (and a large event backlog) to JavaScript. */
  void deliver() {
    auto& d = plane_.datagrams();
    bool eager = plane_.events_size() > EVENTS_EAGER;
    if (d.empty() && !eager) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Value dg = d.empty() ? env.Null() : Napi::Buffer<uint8_t>::Copy(env, d.data(), d.size()).As<Napi::Value>();
    d.clear();
    on_datagrams_.MakeCallback(Value(), {dg, Napi::Boolean::New(env, eager)}, *context_);
    if (env.IsExceptionPending()) {
      // a bug in the handler: report it as uncaught (the worker process ends and is replaced)
      Napi::Error e = env.GetAndClearPendingException();
      napi_fatal_exception(env, e.Value());
    }
  }

  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (poll_) return fail(env, "Plane.open: the socket is already open");
    Napi::Object o = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
    auto num = [&](const char* k) { return o.Has(k) && o.Get(k).IsNumber() ? o.Get(k).As<Napi::Number>().Int32Value() : 0; };
    int port = plane_.open(num("port"), num("min"), num("max"), num("recvBuffer"), num("sendBuffer"));
    if (port < 0) {
      Napi::Error e = Napi::Error::New(env, std::string("the media socket could not be bound: ") + strerror(-port));
      e.Set("code", Napi::String::New(env, -port == EADDRINUSE ? "EADDRINUSE" : -port == EACCES ? "EACCES" : "ESOCKET"));
      e.ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    uv_poll_init(loop, poll_, plane_.fd());
    poll_->data = this;
    uv_poll_start(poll_, UV_READABLE, on_poll);
    return Napi::Number::New(env, port);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    stop();
    return info.Env().Undefined();
  }

  Napi::Value CreateSession(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), plane_.create_session()); }
  Napi::Value CloseSession(const Napi::CallbackInfo& info) {
    plane_.close_session(u32(info, 0));
    return info.Env().Undefined();
  }
  Napi::Value BindAddress(const Napi::CallbackInfo& info) {
    sockaddr_in a;
    if (info.Length() < 3 || !parse_ip(info[1], info[2], &a)) return fail(info.Env(), "Plane.bindAddress(session, ip, port): an IPv4 address and a port");
    return Napi::Boolean::New(info.Env(), plane_.bind_address(u32(info, 0), a));
  }
  Napi::Value SetRemote(const Napi::CallbackInfo& info) {
    sockaddr_in a;
    if (info.Length() < 3 || !parse_ip(info[1], info[2], &a)) return fail(info.Env(), "Plane.setRemote(session, ip, port): an IPv4 address and a port");
    return Napi::Boolean::New(info.Env(), plane_.set_remote(u32(info, 0), a));
  }
  Napi::Value SetKeys(const Napi::CallbackInfo& info) {
    const uint8_t *lk, *ls, *rk, *rs;
    size_t lkn, lsn, rkn, rsn;
    if (info.Length() < 6 || !buffer(info[2], &lk, &lkn) || !buffer(info[3], &ls, &lsn) || !buffer(info[4], &rk, &rkn) || !buffer(info[5], &rs, &rsn) || lkn != rkn ||
        lsn != rsn)
      return fail(info.Env(), "Plane.setKeys(session, profile, localKey, localSalt, remoteKey, remoteSalt): four Buffers, keys and salts of equal lengths");
    return Napi::Boolean::New(info.Env(), plane_.set_keys(u32(info, 0), i32(info, 1), lk, ls, rk, rs, lkn, lsn));
  }
  Napi::Value SrtpState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<uint32_t> v;
    if (!plane_.srtp_state(u32(info, 0), &v)) return env.Null();
    Napi::Uint32Array a = Napi::Uint32Array::New(env, v.size());
    for (size_t i = 0; i < v.size(); i++) a[i] = v[i];
    return a;
  }
  Napi::Value ResumeSrtp(const Napi::CallbackInfo& info) {
    if (info.Length() < 3 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
      return fail(info.Env(), "Plane.resumeSrtp(session, state, rtcpMargin): state is the Uint32Array srtpState gave");
    Napi::Uint32Array a = info[1].As<Napi::Uint32Array>();
    return Napi::Boolean::New(info.Env(), plane_.resume_srtp(u32(info, 0), a.Data(), a.ElementLength(), u32(info, 2)));
  }
  Napi::Value SetExtensions(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), plane_.set_extensions(u32(info, 0), i32(info, 1), i32(info, 2), i32(info, 3), i32(info, 4), i32(info, 5)));
  }
  Napi::Value Send(const Napi::CallbackInfo& info) {
    const uint8_t* d;
    size_t n;
    sockaddr_in a;
    if (info.Length() < 4 || !buffer(info[1], &d, &n) || !parse_ip(info[2], info[3], &a)) return fail(info.Env(), "Plane.send(session, data, ip, port)");
    return Napi::Number::New(info.Env(), plane_.send_plain(u32(info, 0), d, n, a));
  }
  Napi::Value SendRtcp(const Napi::CallbackInfo& info) {
    const uint8_t* d;
    size_t n;
    if (info.Length() < 2 || !buffer(info[1], &d, &n)) return fail(info.Env(), "Plane.sendRtcp(session, rtcp)");
    return Napi::Number::New(info.Env(), plane_.send_rtcp(u32(info, 0), d, n));
  }
  Napi::Value CreateUp(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[1].IsObject()) return fail(env, "Plane.createUp(session, {codec, video, clockRate, mid, rids, ssrcs, payloadTypes})");
    Napi::Object o = info[1].As<Napi::Object>();
    std::string codec = o.Get("codec").IsString() ? o.Get("codec").As<Napi::String>().Utf8Value() : "";
    bool video = o.Get("video").ToBoolean();
    uint32_t clock = o.Get("clockRate").IsNumber() ? o.Get("clockRate").As<Napi::Number>().Uint32Value() : 0;
    std::string mid = o.Get("mid").IsString() ? o.Get("mid").As<Napi::String>().Utf8Value() : "";
    std::vector<std::string> rids;
    std::vector<uint32_t> ssrcs;
    std::vector<uint8_t> pts;
    if (o.Get("rids").IsArray()) {
      auto a = o.Get("rids").As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) rids.push_back(a.Get(i).ToString().Utf8Value());
    }
    if (o.Get("ssrcs").IsArray()) {
      auto a = o.Get("ssrcs").As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) ssrcs.push_back(a.Get(i).ToNumber().Uint32Value());
    }
    if (o.Get("payloadTypes").IsArray()) {
      auto a = o.Get("payloadTypes").As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) pts.push_back((uint8_t)a.Get(i).ToNumber().Uint32Value());
    }
    // RTX (RFC 4588): rtx = [rtx payload type, the payload type it repairs, ...], rtxSsrcs = per layer (0: not signalled)
    std::vector<std::pair<uint8_t, uint8_t>> rtx;
    std::vector<uint32_t> rtx_ssrcs;
    if (o.Get("rtx").IsArray()) {
      auto a = o.Get("rtx").As<Napi::Array>();
      for (uint32_t i = 0; i + 1 < a.Length(); i += 2) {
        uint32_t pt = a.Get(i).ToNumber().Uint32Value(), apt = a.Get(i + 1).ToNumber().Uint32Value();
        if (pt > 127 || apt > 127) return fail(env, "Plane.createUp: an RTX payload type pair out of 0..127");
        rtx.emplace_back((uint8_t)pt, (uint8_t)apt);
      }
    }
    if (o.Get("rtxSsrcs").IsArray()) {
      auto a = o.Get("rtxSsrcs").As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) rtx_ssrcs.push_back(a.Get(i).ToNumber().Uint32Value());
    }
    uint32_t id = plane_.create_up(u32(info, 0), codec_of(codec), video, clock, mid, rids, ssrcs, pts);
    if (id && (!rtx.empty() || !rtx_ssrcs.empty()) && !plane_.set_up_rtx(id, rtx, rtx_ssrcs)) {
      plane_.close_up(id);
      return fail(env, "Plane.createUp: the RTX description was refused (at most 16 payload type pairs)");
    }
    return Napi::Number::New(env, id);
  }
  Napi::Value CloseUp(const Napi::CallbackInfo& info) {
    plane_.close_up(u32(info, 0));
    return info.Env().Undefined();
  }
  Napi::Value SetTap(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), plane_.set_tap(u32(info, 0), info.Length() > 1 && info[1].ToBoolean()));
  }
  Napi::Value CreateDown(const Napi::CallbackInfo& info) {
    // (session, up, ssrc, payloadType, twccId[, rtxSsrc, rtxPayloadType])
    return Napi::Number::New(info.Env(), plane_.create_down(u32(info, 0), u32(info, 1), u32(info, 2), (uint8_t)u32(info, 3), i32(info, 4), u32(info, 5), (uint8_t)std::min<uint32_t>(u32(info, 6), 255)));
  }
  Napi::Value CloseDown(const Napi::CallbackInfo& info) {
    plane_.close_down(u32(info, 0));
    return info.Env().Undefined();
  }
  Napi::Value Probe(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), plane_.probe(u32(info, 0), i32(info, 1), i32(info, 2))); }
  Napi::Value SetTarget(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), plane_.set_target(u32(info, 0), i32(info, 1, -1))); }
  Napi::Value Write(const Napi::CallbackInfo& info) {
    const uint8_t* d;
    size_t n;
    if (info.Length() < 2 || !buffer(info[1], &d, &n)) return fail(info.Env(), "Plane.write(up, records)");
    return Napi::Number::New(info.Env(), plane_.write(u32(info, 0), d, n));
  }
  Napi::Value Drain(const Napi::CallbackInfo& info) {
    std::vector<uint8_t> ev;
    plane_.take_events(&ev);
    if (ev.empty()) return info.Env().Null();
    return Napi::Buffer<uint8_t>::Copy(info.Env(), ev.data(), ev.size());
  }
  Napi::Value UpStats(const Napi::CallbackInfo& info) {
    std::vector<double> v;
    if (!plane_.up_stats(u32(info, 0), &v)) return info.Env().Null();
    return stats_array(info.Env(), v);
  }
  Napi::Value DownStats(const Napi::CallbackInfo& info) {
    std::vector<double> v;
    if (!plane_.down_stats(u32(info, 0), &v)) return info.Env().Null();
    return stats_array(info.Env(), v);
  }
  Napi::Value SessionStats(const Napi::CallbackInfo& info) {
    std::vector<double> v;
    if (!plane_.session_stats(u32(info, 0), &v)) return info.Env().Null();
    return stats_array(info.Env(), v);
  }
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("sendDrops", Napi::Number::New(info.Env(), (double)plane_.send_drops()));
    o.Set("fd", Napi::Number::New(info.Env(), plane_.fd()));
    o.Set("unknownMedia", Napi::Number::New(info.Env(), (double)plane_.unknown_media()));
    return o;
  }

  Plane plane_;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference on_datagrams_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

// --- SRTP with given master keys, for tests that check us against another implementation

/** srtp(op, profile, masterKey, masterSalt, packet, rocOrIndex): 'protect-rtp' | 'unprotect-rtp' | 'protect-rtcp' | 'unprotect-rtcp'. */
Napi::Value Srtp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6 || !info[0].IsString()) return fail(env, "srtp(op, profile, masterKey, masterSalt, packet, rocOrIndex)");
  std::string op = info[0].As<Napi::String>().Utf8Value();
  Direction d;
  const uint8_t *k, *s, *p;
  size_t kn, sn, pn;
  if (!buffer(info[2], &k, &kn) || !buffer(info[3], &s, &sn) || !buffer(info[4], &p, &pn) || pn > 1500) return fail(env, "srtp: Buffers expected (packet at most 1500 bytes)");
  if (!d.init(i32(info, 1), k, kn, s, sn)) return fail(env, "srtp: unknown profile or wrong key/salt length");
  uint32_t arg = u32(info, 5);
  uint8_t buf[1600];
  memcpy(buf, p, pn);
  size_t n = 0;
  uint32_t index = 0;
  RtpHeader h;
  if (op == "protect-rtp") {
    if (!parse_rtp(buf, pn, &h)) return env.Null();
    n = d.protect_rtp(buf, pn, h.header_length, h.ssrc, h.seq, arg);
  } else if (op == "unprotect-rtp") {
    if (pn < d.rtp_overhead()) return env.Null();
    uint8_t c = buf[0];
    buf[0] &= ~0x20;
    bool ok = parse_rtp(buf, pn - d.rtp_overhead(), &h);
    buf[0] = c;
    if (!ok) return env.Null();
    n = d.unprotect_rtp(buf, pn, h.header_length, h.ssrc, h.seq, arg);
  } else if (op == "protect-rtcp") {
    n = d.protect_rtcp(buf, pn, arg);
  } else if (op == "unprotect-rtcp") {
    n = d.unprotect_rtcp(buf, pn, &index);
  } else {
    return fail(env, "srtp: op is protect-rtp, unprotect-rtp, protect-rtcp or unprotect-rtcp");
  }
  if (!n) return env.Null();
  return Napi::Buffer<uint8_t>::Copy(env, buf, n);
}

/** A deliberate segmentation fault: the worker-crash test's stand-in for a bug in this addon. */
Napi::Value FaultForTest(const Napi::CallbackInfo& info) {
  volatile int* p = nullptr;
  *p = 1;
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Plane", PlaneWrap::Init(env));
  exports.Set("srtp", Napi::Function::New(env, Srtp));
  exports.Set("faultForTest", Napi::Function::New(env, FaultForTest));
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  return exports;
}

}  // namespace

NODE_API_MODULE(atrium_native, Init)
