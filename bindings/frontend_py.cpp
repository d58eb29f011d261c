// avsdk._frontend: a thin pybind11 layer over frontend.h. It checks array types (no silent
// casts: float32 and float64 are computed as given, anything else is refused), releases the GIL
// while C++ runs, and maps avsdk::InputError to avsdk._frontend.InputError (a ValueError).
// Python users call avsdk.frontend, which picks this module when it is built.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "frontend.h"

namespace py = pybind11;

namespace {

// A 1-D, C-contiguous float32 or float64 view of `obj` (a copy only if it was strided).
struct Waveform {
  py::array array;
  bool is_double;
  std::size_t size;
  const float* f32() const { return static_cast<const float*>(array.data()); }
  const double* f64() const { return static_cast<const double*>(array.data()); }
};

Waveform as_waveform(const py::handle& obj) {
  if (!py::isinstance<py::array>(obj))
    throw py::value_error("waveform: expected a numpy array [T] of float32 or float64, received " +
                          std::string(py::str(py::type::of(obj).attr("__name__"))));
  auto array = py::reinterpret_borrow<py::array>(obj);
  // equivalence, not identity: a dtype that went through pickle, or carries metadata, is
  // another object describing the same native float32 / float64
  const bool is_float = py::isinstance<py::array_t<float>>(array);
  const bool is_double = !is_float && py::isinstance<py::array_t<double>>(array);
  if (!is_float && !is_double)
    throw py::value_error("waveform: expected float32 or float64 samples, received dtype " +
                          std::string(py::str(array.dtype())));
  if (array.ndim() != 1)
    throw py::value_error("waveform: expected a 1-D mono waveform [T], received an array of " +
                          std::to_string(array.ndim()) + " dimensions");
  py::array contiguous = is_double
      ? py::array(py::array_t<double, py::array::c_style>::ensure(array))
      : py::array(py::array_t<float, py::array::c_style>::ensure(array));
  return {contiguous, is_double, static_cast<std::size_t>(array.shape(0))};
}

std::size_t as_clip_samples(py::ssize_t clip_samples) {
  if (clip_samples <= 0)
    throw py::value_error("clip_samples: expected a positive number of samples, received " +
                          std::to_string(clip_samples));
  return static_cast<std::size_t>(clip_samples);
}

py::array_t<float> examples_array(std::size_t examples) {
  return py::array_t<float>({static_cast<py::ssize_t>(examples), py::ssize_t{1},
                             static_cast<py::ssize_t>(avsdk::kExampleFrames),
                             static_cast<py::ssize_t>(avsdk::kNumMelBands)});
}

py::array_t<float> log_mel(const py::handle& obj) {
  const Waveform w = as_waveform(obj);
  py::array_t<float> out({static_cast<py::ssize_t>(avsdk::num_frames(w.size)),
                          static_cast<py::ssize_t>(avsdk::kNumMelBands)});
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    w.is_double ? avsdk::log_mel(w.f64(), w.size, dst) : avsdk::log_mel(w.f32(), w.size, dst);
  }
  return out;
}

py::array_t<float> log_mel_examples(const py::handle& obj) {
  const Waveform w = as_waveform(obj);
  py::array_t<float> out = examples_array(avsdk::num_examples(w.size));
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    w.is_double ? avsdk::log_mel_examples(w.f64(), w.size, dst) : avsdk::log_mel_examples(w.f32(), w.size, dst);
  }
  return out;
}

py::array_t<float> prepare_clip(const py::handle& obj, py::ssize_t clip_samples) {
  const Waveform w = as_waveform(obj);
  const std::size_t length = as_clip_samples(clip_samples);
  py::array_t<float> out(static_cast<py::ssize_t>(length));
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    w.is_double ? avsdk::prepare_clip(w.f64(), w.size, length, dst) : avsdk::prepare_clip(w.f32(), w.size, length, dst);
  }
  return out;
}

py::array_t<float> clip_log_mel_examples(const py::handle& obj, py::ssize_t clip_samples) {
  const Waveform w = as_waveform(obj);
  const std::size_t length = as_clip_samples(clip_samples);
  py::array_t<float> out = examples_array(avsdk::num_examples(length));
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    std::vector<float> clip(length);
    w.is_double ? avsdk::prepare_clip(w.f64(), w.size, length, clip.data())
                : avsdk::prepare_clip(w.f32(), w.size, length, clip.data());
    avsdk::log_mel_examples(clip.data(), length, dst);
  }
  return out;
}

py::array_t<float> log_mel_with_kernel(const std::string& id, py::array_t<float, py::array::c_style> waveform) {
  if (waveform.ndim() != 1) throw py::value_error("waveform: expected a 1-D float32 waveform [T]");
  const std::size_t n = static_cast<std::size_t>(waveform.shape(0));
  py::array_t<float> out({static_cast<py::ssize_t>(avsdk::num_frames(n)), static_cast<py::ssize_t>(avsdk::kNumMelBands)});
  float* dst = out.mutable_data();
  const float* src = waveform.data();
  {
    py::gil_scoped_release release;
    avsdk::log_mel_with_kernel(id, src, n, dst);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_frontend, m) {
  m.doc() = "Compiled VGGish log-mel frontend of avsdk (see avsdk.frontend; C++ core in bindings/).";
  py::register_exception<avsdk::InputError>(m, "InputError", PyExc_ValueError);

  m.def("log_mel", &log_mel, py::arg("waveform"),
        "Log-mel spectrogram [frames, 64] float32 of a 16 kHz waveform [T] (float32 or float64).");
  m.def("log_mel_examples", &log_mel_examples, py::arg("waveform"),
        "VGGish examples [N, 1, 96, 64] float32 of a 16 kHz waveform [T].");
  m.def("prepare_clip", &prepare_clip, py::arg("waveform"), py::arg("clip_samples"),
        "Centre/tile to clip_samples and min-max rescale to [-1, 1]: [clip_samples] float32.");
  m.def("clip_log_mel_examples", &clip_log_mel_examples, py::arg("waveform"), py::arg("clip_samples"),
        "prepare_clip then log_mel_examples: [N, 1, 96, 64] float32.");
  m.def("num_frames", &avsdk::num_frames, py::arg("num_samples"));
  m.def("num_examples", &avsdk::num_examples, py::arg("num_samples"));
  m.def("implementation", &avsdk::implementation_name,
        "Which FFT and instruction set this build runs on this CPU.");

  m.def("_available_kernels", &avsdk::available_kernels, "Testing: kernel ids this CPU can run, best first.");
  m.def("_log_mel_with_kernel", &log_mel_with_kernel, py::arg("kernel"), py::arg("waveform"),
        "Testing: log_mel of a float32 waveform computed by the named kernel.");

  m.attr("SAMPLE_RATE") = avsdk::kSampleRate;
  m.attr("WINDOW_LENGTH") = avsdk::kWindowLength;
  m.attr("HOP_LENGTH") = avsdk::kHopLength;
  m.attr("FFT_LENGTH") = avsdk::kFftLength;
  m.attr("NUM_MEL_BANDS") = avsdk::kNumMelBands;
  m.attr("EXAMPLE_FRAMES") = avsdk::kExampleFrames;
}
