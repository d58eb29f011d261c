// The VGGish log-mel frontend (see frontend.h). Design, for speed on one core:
//  - frames are transformed kLanes = 16 at a time, one frame per SIMD lane (GCC/Clang vector
//    extensions), so the FFT is plain scalar-looking code with no shuffles;
//  - the real 512-point FFT is a complex 256-point FFT (two passes of 16-point DFTs, in double,
//    8 lanes at a time) followed by the usual even/odd split; from the power spectrum on
//    (square root, mel, log) only relative precision matters and all 16 lanes run in float32
//    (see frontend.h and frontend_kernel.inc);
//  - the mel filterbank is stored sparsely (each band is a short run of bins);
//  - on GCC/x86-64 the batch kernel is compiled three times (AVX-512, AVX2+FMA, SSE2) and the
//    best one the CPU supports is picked once at run time.
// Square roots go through intrinsics: without -fno-math-errno, GCC will not vectorise
// std::sqrt (it keeps a scalar call for errno), and the build flags stay those of setup.py.
#include "frontend.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 flags its own avx512fintrin.h (`__m512d __Y = __Y;`) once our kernels inline it.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define AVSDK_X86 1
#elif defined(__aarch64__)
#include <arm_neon.h>
#define AVSDK_NEON 1
#endif

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"  // vector arguments of always-inline helpers only
#endif

#define AVSDK_ALWAYS_INLINE __attribute__((always_inline))
#if defined(__clang__)
#define AVSDK_SHUFFLE(mask_type, a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define AVSDK_SHUFFLE(mask_type, a, b, ...) __builtin_shuffle(a, b, mask_type{__VA_ARGS__})
#endif
#define AVSDK_ISA_SCALAR 0
#define AVSDK_ISA_SSE2 1
#define AVSDK_ISA_AVX 2
#define AVSDK_ISA_AVX512 3
#define AVSDK_ISA_NEON 4

namespace avsdk {
namespace {

typedef double v8d __attribute__((vector_size(64)));
typedef long long v8l __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef std::int32_t v8i __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));
typedef std::int32_t v16i __attribute__((vector_size(64)));

template <class V>
struct ShuffleMask;  // the integer vector __builtin_shuffle wants for V
template <>
struct ShuffleMask<v8d> {
  typedef v8l type;
};
template <>
struct ShuffleMask<v8f> {
  typedef v8i type;
};

constexpr std::size_t kLanes = 16;  // frames per batch: the FFT runs 8 at a time, the rest 16
constexpr std::size_t kHalf = kFftLength / 2;  // the real FFT runs as a complex FFT of this size
constexpr std::size_t kFrameBins = kWindowLength / 2;  // complex inputs that are not zero padding
constexpr double kPi = 3.14159265358979323846;
constexpr double kInfinity = std::numeric_limits<double>::infinity();

struct MelBand {
  std::size_t first;   // first bin with a non-zero weight
  std::size_t count;   // bins in the run
  std::size_t offset;  // into Tables::weights
};

struct Tables {
  double window[kWindowLength];
  double pass_re[16][16], pass_im[16][16];  // W256^(j k) = exp(-2 pi i j k / 256), first FFT pass
  double split_cos[kHalf], split_sin[kHalf];            // W^k = exp(-2 pi i k / 512) = cos - i sin
  std::size_t first_split;              // smallest k whose pair (k, 256 - k) holds a weighted bin
  MelBand bands[kNumMelBands];
  std::vector<float> weights;  // float32: the mel product runs in float32
  Tables();
};

double hertz_to_mel(double hertz) { return 1127.0 * std::log(1.0 + hertz / 700.0); }

Tables::Tables() {
  for (std::size_t n = 0; n < kWindowLength; ++n)
    window[n] = 0.5 - 0.5 * std::cos(2.0 * kPi / kWindowLength * static_cast<double>(n));
  for (std::size_t j = 0; j < 16; ++j) {
    for (std::size_t k = 0; k < 16; ++k) {
      pass_re[j][k] = std::cos(2.0 * kPi * static_cast<double>(j * k) / kHalf);
      pass_im[j][k] = -std::sin(2.0 * kPi * static_cast<double>(j * k) / kHalf);
    }
  }
  for (std::size_t k = 0; k < kHalf; ++k) {
    split_cos[k] = std::cos(2.0 * kPi * k / kFftLength);
    split_sin[k] = std::sin(2.0 * kPi * k / kFftLength);
  }
  // The mel_features.py triangles: 66 edges evenly spaced in mel, slopes linear in mel, DC = 0.
  const double lo = hertz_to_mel(kMelMinHz), hi = hertz_to_mel(kMelMaxHz);
  const double step = (hi - lo) / static_cast<double>(kNumMelBands + 1);
  double edges[kNumMelBands + 2];
  for (std::size_t i = 0; i < kNumMelBands + 2; ++i) edges[i] = lo + step * static_cast<double>(i);
  edges[kNumMelBands + 1] = hi;
  double bin_mel[kNumBins];
  for (std::size_t k = 0; k < kNumBins; ++k)
    bin_mel[k] = hertz_to_mel(static_cast<double>(k) * (kSampleRate / 2.0) / (kNumBins - 1));
  for (std::size_t band = 0; band < kNumMelBands; ++band) {
    const double lower = edges[band], centre = edges[band + 1], upper = edges[band + 2];
    bands[band] = {0, 0, weights.size()};
    for (std::size_t k = 1; k < kNumBins; ++k) {  // k = 0 (DC) always has weight 0
      const double rising = (bin_mel[k] - lower) / (centre - lower);
      const double falling = (upper - bin_mel[k]) / (upper - centre);
      const double w = std::max(0.0, std::min(rising, falling));
      if (w <= 0.0) continue;
      if (bands[band].count == 0) bands[band].first = k;
      // Runs are contiguous: pad any interior zero so indexing stays first + i.
      while (bands[band].first + bands[band].count < k) { weights.push_back(0.0); ++bands[band].count; }
      weights.push_back(static_cast<float>(0.5 * w));  // the kernel computes 2|X| (see frontend_kernel.inc)
      ++bands[band].count;
    }
  }
  std::size_t lowest = kHalf, highest = 0;
  for (const MelBand& b : bands) {
    lowest = std::min(lowest, b.first);
    highest = std::max(highest, b.first + b.count - 1);
  }
  first_split = std::max<std::size_t>(1, std::min(lowest, kHalf - highest));
}

const Tables& tables() {
  static const Tables instance;
  return instance;
}

// 64-byte aligned storage for `count` doubles. Not std::vector<v8d>: GCC drops the vector type's
// alignment in template arguments, so the allocator would hand out 16-byte aligned memory.
struct LaneRows {
  v8d* storage;
  double* data;
  explicit LaneRows(std::size_t count)
      : storage(new v8d[(count + 7) / 8]), data(reinterpret_cast<double*>(storage)) {}
  ~LaneRows() { delete[] storage; }
  LaneRows(const LaneRows&) = delete;
  LaneRows& operator=(const LaneRows&) = delete;
};

struct Scan {
  double lo, hi;    // over the finite samples
  bool non_finite;  // any NaN or Inf
};

struct cv {  // a complex value of each lane
  v8d r, i;
};

struct Batch {
  cv z[kHalf];               // the 256-point FFT of 8 lanes (re and im side by side: see README)
  v16f power[kNumBins];      // |2X[k]|^2, then 2|X[k]|, of all 16 lanes
  v16f logmel[kNumMelBands];
  float discard[kNumMelBands];  // output row of lanes past the last frame
};

}  // namespace

// --- the batch kernel, once per instruction set ----------------------------------------------
#if defined(AVSDK_X86) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define AVSDK_MULTIVERSION 1
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#define AVSDK_KERNEL_NS kernel_avx512
#define AVSDK_KERNEL_ISA AVSDK_ISA_AVX512
#include "frontend_kernel.inc"
#undef AVSDK_KERNEL_NS
#undef AVSDK_KERNEL_ISA
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define AVSDK_KERNEL_NS kernel_avx2
#define AVSDK_KERNEL_ISA AVSDK_ISA_AVX
#include "frontend_kernel.inc"
#undef AVSDK_KERNEL_NS
#undef AVSDK_KERNEL_ISA
#pragma GCC pop_options
#endif

#define AVSDK_KERNEL_NS kernel_base
#if defined(AVSDK_X86)
#define AVSDK_KERNEL_ISA AVSDK_ISA_SSE2
#elif defined(AVSDK_NEON)
#define AVSDK_KERNEL_ISA AVSDK_ISA_NEON
#else
#define AVSDK_KERNEL_ISA AVSDK_ISA_SCALAR
#endif
#include "frontend_kernel.inc"
#undef AVSDK_KERNEL_NS
#undef AVSDK_KERNEL_ISA

namespace {

struct Kernel {
  void (*transform)(const double*, Batch&, const Tables&, float* const*);
  bool (*transpose_f32)(const float*, std::size_t, std::size_t, std::size_t, double*);
  bool (*transpose_f64)(const double*, std::size_t, std::size_t, std::size_t, double*);
  bool (*finite_f32)(const float*, std::size_t);
  bool (*finite_f64)(const double*, std::size_t);
  Scan (*scan_f32)(const float*, std::size_t);
  Scan (*scan_f64)(const double*, std::size_t);
  void (*rescale_f32)(const float*, std::size_t, double, double, float*);
  void (*rescale_f64)(const double*, std::size_t, double, double, float*);
  const char* id;
  const char* name;
};

#define AVSDK_KERNEL_ENTRY(ns, id, label)                                                             \
  Kernel { ns::transform, ns::transpose_lanes, ns::transpose_lanes, ns::all_finite,   \
           ns::all_finite, ns::scan, ns::scan, ns::rescale, ns::rescale, id,                            \
           "own 16x16 FFT (double), float32 mel/log, " label }

// Every kernel this build holds, best first, with whether this CPU can run it.
struct Candidate {
  Kernel kernel;
  bool supported;
};

std::vector<Candidate> candidates() {
  std::vector<Candidate> out;
#if defined(AVSDK_MULTIVERSION)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  out.push_back({AVSDK_KERNEL_ENTRY(kernel_avx512, "avx512", "AVX-512"), avx2 && __builtin_cpu_supports("avx512f")});
  out.push_back({AVSDK_KERNEL_ENTRY(kernel_avx2, "avx2", "AVX2+FMA"), avx2});
#endif
#if defined(AVSDK_X86)
  out.push_back({AVSDK_KERNEL_ENTRY(kernel_base, "sse2", "SSE2"), true});
#elif defined(AVSDK_NEON)
  out.push_back({AVSDK_KERNEL_ENTRY(kernel_base, "neon", "NEON"), true});
#else
  out.push_back({AVSDK_KERNEL_ENTRY(kernel_base, "generic", "generic vectors"), true});
#endif
  return out;
}

const std::vector<Candidate>& all_kernels() {
  static const std::vector<Candidate> list = candidates();
  return list;
}

thread_local const Kernel* forced_kernel = nullptr;  // set only by log_mel_with_kernel (tests)

const Kernel& kernel() {
  if (forced_kernel != nullptr) return *forced_kernel;
  static const Kernel& best = [] () -> const Kernel& {
    for (const Candidate& c : all_kernels())
      if (c.supported) return c.kernel;
    return all_kernels().back().kernel;
  }();
  return best;
}

bool all_finite(const float* s, std::size_t n) { return kernel().finite_f32(s, n); }
bool all_finite(const double* s, std::size_t n) { return kernel().finite_f64(s, n); }
Scan scan(const float* s, std::size_t n) { return kernel().scan_f32(s, n); }
Scan scan(const double* s, std::size_t n) { return kernel().scan_f64(s, n); }
void rescale(const float* s, std::size_t n, double lo, double inv, float* d) { kernel().rescale_f32(s, n, lo, inv, d); }
void rescale(const double* s, std::size_t n, double lo, double inv, float* d) { kernel().rescale_f64(s, n, lo, inv, d); }

template <class T>
[[noreturn]] void reject_non_finite(const T* samples, std::size_t n, const char* what) {
  std::size_t count = 0, first = n;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(static_cast<double>(samples[i]))) {
      if (first == n) first = i;
      ++count;
    }
  }
  throw InputError(std::string(what) + ": expected finite samples, received " +
                   (count == n ? std::string("only NaN/Inf samples") :
                    std::to_string(count) + " NaN/Inf samples of " + std::to_string(n) +
                        ", the first at index " + std::to_string(first)));
}

template <class T>
Scan require_finite_scan(const T* samples, std::size_t n, const char* what) {
  const Scan result = scan(samples, n);
  if (result.non_finite) reject_non_finite(samples, n, what);
  return result;
}



void require_length(std::size_t n, std::size_t minimum, const char* what, const char* unit) {
  if (n >= minimum) return;
  throw InputError(std::string(what) + ": expected at least " + std::to_string(minimum) +
                   " samples at 16 kHz (" + unit + "), received " + std::to_string(n) + " samples");
}

// Lane l computes frames [l * P, (l + 1) * P) with P = ceil(frames / 16). The samples those
// frames read are transposed once into rows[i * 16 + l] = samples[l * P * 160 + i] (zero past
// the end, converted to double), so a frame of all lanes is a run of consecutive 16-sample
// rows: the kernel loads whole vectors and the overlapping windows (400 of hop 160) do not
// re-gather samples. The transposition also checks what it reads for NaN/Inf.
bool transpose(const Kernel& k, const float* s, std::size_t n, std::size_t stride, std::size_t rows, double* dst) {
  return k.transpose_f32(s, n, stride, rows, dst);
}
bool transpose(const Kernel& k, const double* s, std::size_t n, std::size_t stride, std::size_t rows, double* dst) {
  return k.transpose_f64(s, n, stride, rows, dst);
}

// The first `frames` frames of the n samples; throws InputError if any of the n samples (used
// or not) is NaN or Inf, as the numpy reference does.
template <class T>
void log_mel_frames(const T* samples, std::size_t n, std::size_t frames, float* out) {
  const Tables& t = tables();
  const Kernel& k = kernel();
  const std::size_t per_lane = (frames + kLanes - 1) / kLanes;
  const std::size_t stride = per_lane * kHopLength;
  const std::size_t rows = ((per_lane - 1) * kHopLength + kWindowLength + 7) / 8 * 8;
  const LaneRows lanes(rows * kLanes);
  // Lane l reads [l * stride, l * stride + rows), rows >= stride: together [0, covered).
  const std::size_t covered = std::min(n, (kLanes - 1) * stride + rows);
  if (!transpose(k, samples, n, stride, rows, lanes.data) || !all_finite(samples + covered, n - covered))
    reject_non_finite(samples, n, "waveform");
  std::unique_ptr<Batch> batch(new Batch);
  float* targets[kLanes];
  for (std::size_t j = 0; j < per_lane; ++j) {
    for (std::size_t l = 0; l < kLanes; ++l) {
      const std::size_t frame = l * per_lane + j;
      targets[l] = frame < frames ? out + frame * kNumMelBands : batch->discard;
    }
    k.transform(lanes.data + j * kHopLength * kLanes, *batch, t, targets);
  }
}

template <class T>
void log_mel_impl(const T* samples, std::size_t n, float* out) {
  require_length(n, kMinSamplesFrame, "waveform", "one 25 ms window");
  log_mel_frames(samples, n, num_frames(n), out);
}

template <class T>
void log_mel_examples_impl(const T* samples, std::size_t n, float* out) {
  require_length(n, kMinSamplesExample, "waveform", "one 0.96 s example");
  log_mel_frames(samples, n, num_examples(n) * kExampleFrames, out);
}

template <class T>
void prepare_clip_impl(const T* samples, std::size_t n, std::size_t clip_samples, float* out) {
  if (n == 0) throw InputError("waveform: expected at least one sample, received 0 samples");
  if (clip_samples == 0) throw InputError("clip_samples: expected a positive length, received 0");
  const Scan all = require_finite_scan(samples, n, "waveform");
  // As the SSPL/SACL loaders do it: tile int(clip / n) + 1 times when short, then take the
  // centre; out[i] = tiled[start + i] = samples[(start + i) % n].
  const std::size_t tiled = n < clip_samples ? n * (clip_samples / n + 1) : n;
  const std::size_t start = tiled / 2 - clip_samples / 2;
  // A clip of a tiled signal holds every sample; a clip of a long one only its own slice.
  // (The whole signal was checked for NaN/Inf above, as the numpy path does.)
  const Scan range = n <= clip_samples ? all : scan(samples + start, clip_samples);
  // Multiplying by the reciprocal instead of dividing (numpy divides) can move a value by one
  // double ulp, invisible after float32 rounding but for a rare last-bit flip (< 1.2e-7).
  const double inverse = 1.0 / (range.hi - range.lo + 1e-3);
  for (std::size_t done = 0, source = start % n; done < clip_samples; source = 0) {
    const std::size_t count = std::min(n - source, clip_samples - done);
    rescale(samples + source, count, range.lo, inverse, out + done);
    done += count;
  }
}

template <class T>
std::vector<float> clip_examples_impl(const T* samples, std::size_t n, std::size_t clip_samples) {
  std::vector<float> clip(clip_samples);
  prepare_clip_impl(samples, n, clip_samples, clip.data());
  std::vector<float> out(num_examples(clip_samples) * kExampleFrames * kNumMelBands);
  log_mel_examples_impl(clip.data(), clip.size(), out.data());
  return out;
}

}  // namespace

std::size_t num_frames(std::size_t num_samples) noexcept {
  return num_samples < kWindowLength ? 0 : 1 + (num_samples - kWindowLength) / kHopLength;
}

std::size_t num_examples(std::size_t num_samples) noexcept { return num_frames(num_samples) / kExampleFrames; }

void log_mel(const float* samples, std::size_t n, float* out) { log_mel_impl(samples, n, out); }
void log_mel(const double* samples, std::size_t n, float* out) { log_mel_impl(samples, n, out); }
void log_mel_examples(const float* samples, std::size_t n, float* out) { log_mel_examples_impl(samples, n, out); }
void log_mel_examples(const double* samples, std::size_t n, float* out) { log_mel_examples_impl(samples, n, out); }
void prepare_clip(const float* samples, std::size_t n, std::size_t clip_samples, float* out) {
  prepare_clip_impl(samples, n, clip_samples, out);
}
void prepare_clip(const double* samples, std::size_t n, std::size_t clip_samples, float* out) {
  prepare_clip_impl(samples, n, clip_samples, out);
}
std::vector<float> clip_log_mel_examples(const float* samples, std::size_t n, std::size_t clip_samples) {
  return clip_examples_impl(samples, n, clip_samples);
}
std::vector<float> clip_log_mel_examples(const double* samples, std::size_t n, std::size_t clip_samples) {
  return clip_examples_impl(samples, n, clip_samples);
}

const char* implementation_name() noexcept { return kernel().name; }

std::vector<std::string> available_kernels() {
  std::vector<std::string> ids;
  for (const Candidate& c : all_kernels())
    if (c.supported) ids.emplace_back(c.kernel.id);
  return ids;
}

void log_mel_with_kernel(const std::string& id, const float* samples, std::size_t n, float* out) {
  for (const Candidate& c : all_kernels()) {
    if (c.supported && id == c.kernel.id) {
      struct Restore {
        ~Restore() { forced_kernel = nullptr; }
      } restore;
      forced_kernel = &c.kernel;
      log_mel(samples, n, out);
      return;
    }
  }
  throw InputError("kernel: expected one of this CPU's kernels (available_kernels()), received " + id);
}

}  // namespace avsdk
