#pragma once
// device_payload_t<C, T>: the device payload compressor C produces on the CUDA back end
// (the device counterpart of payload_t<C, T>). Each compressor's kernel header specialises
// device_payload for it.
namespace gradcomp::cuda {

template <class C, class T>
struct device_payload;

template <class C, class T>
using device_payload_t = typename device_payload<C, T>::type;

}  // namespace gradcomp::cuda
