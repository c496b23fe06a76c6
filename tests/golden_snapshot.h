#pragma once
// What the golden test compares: per cell key, the values training decided (storage only, so
// that the expected file can be written by a build of another version).

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "storage/store.h"

namespace htga::test {

/// Per cell key: the stored values that training decides.
inline nlohmann::json golden_snapshot(const std::string& db) {
  using nlohmann::json;
  htga::storage::Store store(db);
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json out = json::object();
  std::map<int64_t, std::string> key_of;
  for (const auto& r : store.runs()) {
    key_of[r.id] = r.cell_key;
    json& cell = out[r.cell_key];
    cell["status"] = r.status;
    cell["steps"] = r.steps;
    cell["test_acc"] = num(r.test_acc);
    cell["test_loss"] = num(r.test_loss);
    cell["train_acc"] = num(r.train_acc);
    cell["val_metric"] = num(r.val_metric);
    for (const auto& e : store.evals(r.id)) cell["evals"].push_back({e.split, e.epoch, num(e.loss), num(e.acc)});
  }
  store.for_each_step([&](int64_t id, const htga::storage::StepRow& s) {
    json& cell = out[key_of.at(id)];
    for (const auto& [name, v] : std::initializer_list<std::pair<const char*, double>>{{"loss", s.loss},
                                                                                       {"lr", s.lr},
                                                                                       {"alpha_hat", s.alpha_hat},
                                                                                       {"grad_norm", s.grad_norm},
                                                                                       {"alpha_smooth", s.alpha_smooth},
                                                                                       {"phase", s.phase},
                                                                                       {"clip_coef", s.clip_coef}})
      cell[name].push_back(num(v));
  });
  store.for_each_layer_alpha([&](int64_t id, const htga::storage::LayerAlphaRow& a) {
    out[key_of.at(id)]["layer_alpha"].push_back(num(a.alpha_hat));
  });
  return out;
}

}  // namespace htga::test
