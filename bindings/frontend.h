// avsdk audio frontend: the VGGish log-mel features of docs/method.md ("Inputs"), in plain C++17.
//
// No Python headers: a C++ application on the device links frontend.cpp directly; the
// pybind11 layer (frontend_py.cpp) only converts arrays. Input is mono audio already at
// 16 kHz (resampling is done by soxr on the Python side, see README.md).
//
//   16 kHz samples -> periodic Hann 400 / hop 160 -> |FFT 512| -> 64 HTK mel bands
//   (125-7500 Hz, DC bin weight 0) -> log(mel + 0.01) -> examples of 96 frames
//
// Results match the numpy reference (avsdk.melspec) to ~1e-6 absolute (one float32 ulp of the
// output): the FFT and its even/odd split run in double precision because float32 rounding in
// loud frames leaks into quiet mel bands (measured up to 8e-4 on a chirp); from the power
// spectrum on (square root, mel, log) only relative precision matters and float32 is used.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace avsdk {

inline constexpr int kSampleRate = 16000;
inline constexpr std::size_t kWindowLength = 400;  // 25 ms
inline constexpr std::size_t kHopLength = 160;     // 10 ms
inline constexpr std::size_t kFftLength = 512;
inline constexpr std::size_t kNumBins = kFftLength / 2 + 1;
inline constexpr std::size_t kNumMelBands = 64;
inline constexpr std::size_t kExampleFrames = 96;  // 0.96 s
inline constexpr double kMelMinHz = 125.0;
inline constexpr double kMelMaxHz = 7500.0;
inline constexpr double kLogOffset = 0.01;
// Fewest samples giving one frame, and one whole example.
inline constexpr std::size_t kMinSamplesFrame = kWindowLength;
inline constexpr std::size_t kMinSamplesExample = kWindowLength + (kExampleFrames - 1) * kHopLength;

// Raised for input the frontend cannot give a meaningful answer for (too short, NaN, Inf).
class InputError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Whole 400-sample windows at hop 160 in num_samples samples (0 when shorter than one).
std::size_t num_frames(std::size_t num_samples) noexcept;
// Whole 96-frame examples in num_samples samples.
std::size_t num_examples(std::size_t num_samples) noexcept;

// Log-mel spectrogram, row-major [num_frames(n), 64], written to out.
// Throws InputError when n < 400 or a sample is NaN or Inf.
void log_mel(const float* samples, std::size_t n, float* out);
void log_mel(const double* samples, std::size_t n, float* out);

// VGGish examples, row-major [num_examples(n), 96, 64] (trailing frames dropped), to out.
// Throws InputError when n < 15600 (one example) or a sample is NaN or Inf.
void log_mel_examples(const float* samples, std::size_t n, float* out);
void log_mel_examples(const double* samples, std::size_t n, float* out);

// The SSPL/SACL clip: tile a short signal (int(clip / n) + 1 times), take the centre
// clip_samples, rescale min-max: 2 * ((x - min) / (max - min + 1e-3) - 0.5), computed in double
// and rounded to float32 as the numpy path does (up to a rare last-bit flip: the division is a
// multiplication by the reciprocal here). out holds clip_samples values.
// Throws InputError when n == 0, clip_samples == 0, or a sample is NaN or Inf.
void prepare_clip(const float* samples, std::size_t n, std::size_t clip_samples, float* out);
void prepare_clip(const double* samples, std::size_t n, std::size_t clip_samples, float* out);

// prepare_clip then log_mel_examples: [num_examples(clip_samples), 96, 64].
std::vector<float> clip_log_mel_examples(const float* samples, std::size_t n, std::size_t clip_samples);
std::vector<float> clip_log_mel_examples(const double* samples, std::size_t n, std::size_t clip_samples);

// Which FFT and instruction set this build runs (for diagnostics, e.g. `avsdk info`).
const char* implementation_name() noexcept;

// Testing: the ids of the kernels this CPU can run ("avx512", "avx2", "sse2", "neon", "generic"),
// and log_mel computed by one of them instead of the best.
std::vector<std::string> available_kernels();
void log_mel_with_kernel(const std::string& id, const float* samples, std::size_t n, float* out);

}  // namespace avsdk
