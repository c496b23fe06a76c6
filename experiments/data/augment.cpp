#include "experiments/data/augment.h"

#include <stdexcept>

namespace htga::data {

torch::Tensor crop_flip(const torch::Tensor& x, int64_t pad, const torch::Tensor& dy, const torch::Tensor& dx,
                        const torch::Tensor& flip) {
  TORCH_CHECK(x.dim() == 4, "crop_flip: expected a batch [B, C, H, W], got ", x.sizes());
  TORCH_CHECK(pad >= 0, "crop_flip: negative padding ", pad);
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto padded = pad > 0 ? torch::constant_pad_nd(x, {pad, pad, pad, pad}, 0) : x;
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(x.device());
  auto rows = dy.view({b, 1}) + torch::arange(h, i64);  // [B, H]
  auto cols = torch::where(flip.view({b, 1}), dx.view({b, 1}) + (w - 1) - torch::arange(w, i64),
                           dx.view({b, 1}) + torch::arange(w, i64));  // [B, W]
  auto picked_rows = padded.gather(2, rows.view({b, 1, h, 1}).expand({b, c, h, w + 2 * pad}));
  return picked_rows.gather(3, cols.view({b, 1, 1, w}).expand({b, c, h, w}));
}

torch::Tensor random_crop_flip(const torch::Tensor& x, int64_t pad, at::Generator& gen) {
  const int64_t b = x.size(0);
  auto cpu = torch::TensorOptions().dtype(torch::kInt64);
  // One draw of [3, B] on the host, one copy to the device.
  auto r = torch::empty({3, b}, cpu);
  r.narrow(0, 0, 2).random_(0, 2 * pad + 1, gen);
  r.narrow(0, 2, 1).random_(0, 2, gen);
  r = r.to(x.device(), /*non_blocking=*/true);
  return crop_flip(x, pad, r[0], r[1], r[2].to(torch::kBool));
}

torch::Tensor augment_batch(const torch::Tensor& x, const std::string& augment, at::Generator& gen) {
  if (augment == "none") return x;
  if (augment == "crop-flip") return random_crop_flip(x, kCropPadding, gen);
  throw std::invalid_argument("unknown augmentation \"" + augment + "\"; valid: none, crop-flip");
}

}  // namespace htga::data
