from hyenadna.ops.fftconv import fft_length, fftconv, fftconv_ref, filter_spectrum

__all__ = ["fft_length", "fftconv", "fftconv_ref", "filter_spectrum"]
