// Every CPU op against a float64 reference: the forward output, and the backward against
// float64 central finite differences of the reference forward. Max abs/rel errors are
// printed per tensor.
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <omp.h>

#include "kernels/backend.hpp"

namespace {

using vecd = std::vector<double>;
using vecf = std::vector<float>;
// A float64 reference forward: inputs -> output.
using reference_fn = std::function<vecd(const std::vector<vecd>&)>;

vecf random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  vecf v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

vecd to_double(const vecf& v) { return vecd(v.begin(), v.end()); }

struct error_stats {
  double max_abs = 0.0;
  double max_rel = 0.0;
};

// Elementwise comparison: |a - b| <= atol + rtol * |b| everywhere.
error_stats expect_close(const std::string& what, const vecf& got, const vecd& want,
                         double atol, double rtol) {
  EXPECT_EQ(got.size(), want.size()) << what;
  error_stats s;
  int reported = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); i++) {
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    s.max_abs = std::max(s.max_abs, err);
    s.max_rel = std::max(s.max_rel, err / std::max(std::abs(want[i]), 1e-6));
    if (err > atol + rtol * std::abs(want[i]) && reported++ < 5) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i];
    }
  }
  std::printf("  %-24s max abs err %.3e  max rel err %.3e\n", what.c_str(), s.max_abs,
              s.max_rel);
  return s;
}

// d/d(inputs[which]) of sum(dout * f(inputs)) by central differences in float64.
vecd numeric_gradient(const reference_fn& f, std::vector<vecd> inputs, size_t which,
                      const vecd& dout) {
  const double h = 1e-5;
  vecd grad(inputs[which].size());
  for (size_t i = 0; i < grad.size(); i++) {
    const double saved = inputs[which][i];
    inputs[which][i] = saved + h;
    const vecd up = f(inputs);
    inputs[which][i] = saved - h;
    const vecd down = f(inputs);
    inputs[which][i] = saved;
    double diff = 0.0;
    for (size_t j = 0; j < dout.size(); j++) diff += dout[j] * (up[j] - down[j]);
    grad[i] = diff / (2 * h);
  }
  return grad;
}

class op_gradients : public ::testing::Test {
protected:
  std::unique_ptr<lz::kernels::backend> k = lz::kernels::make_cpu_backend(2);
};

// ----- float64 references -----

vecd ref_matmul(const vecd& inp, const vecd& w, const vecd& bias, int N, int C, int OC) {
  vecd out(static_cast<size_t>(N * OC));
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = bias.empty() ? 0.0 : bias[o];
      for (int c = 0; c < C; c++) s += inp[n * C + c] * w[o * C + c];
      out[n * OC + o] = s;
    }
  return out;
}

vecd ref_layernorm(const vecd& x, const vecd& w, const vecd& b, int N, int C) {
  vecd out(x.size());
  for (int n = 0; n < N; n++) {
    double m = 0, v = 0;
    for (int c = 0; c < C; c++) m += x[n * C + c];
    m /= C;
    for (int c = 0; c < C; c++) v += (x[n * C + c] - m) * (x[n * C + c] - m);
    const double s = 1.0 / std::sqrt(v / C + 1e-5);
    for (int c = 0; c < C; c++) out[n * C + c] = (x[n * C + c] - m) * s * w[c] + b[c];
  }
  return out;
}

vecd ref_attention(const vecd& qkv, int B, int T, int C, int NH) {
  const int hs = C / NH;
  vecd out(static_cast<size_t>(B * T * C), 0.0);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++) {
        vecd s(static_cast<size_t>(t + 1));
        double mx = -1e300;
        for (int t2 = 0; t2 <= t; t2++) {
          double d = 0;
          for (int i = 0; i < hs; i++)
            d += qkv[(b * T + t) * 3 * C + h * hs + i] * qkv[(b * T + t2) * 3 * C + C + h * hs + i];
          s[t2] = d / std::sqrt(static_cast<double>(hs));
          mx = std::max(mx, s[t2]);
        }
        double z = 0;
        for (auto& e : s) z += (e = std::exp(e - mx));
        for (int t2 = 0; t2 <= t; t2++)
          for (int i = 0; i < hs; i++)
            out[(b * T + t) * C + h * hs + i] +=
                s[t2] / z * qkv[(b * T + t2) * 3 * C + 2 * C + h * hs + i];
      }
  return out;
}

double ref_gelu(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

TEST_F(op_gradients, matmul_forward_and_backward_match_float64) {
  const int N = 6, C = 8, OC = 5;
  const vecf inp = random_floats(N * C, 1), w = random_floats(OC * C, 2), bias = random_floats(OC, 3);
  vecf out(N * OC);
  k->matmul_forward(out.data(), inp.data(), w.data(), bias.data(), N, C, OC);
  const reference_fn f = [&](const std::vector<vecd>& in) {
    return ref_matmul(in[0], in[1], in[2], N, C, OC);
  };
  const std::vector<vecd> in{to_double(inp), to_double(w), to_double(bias)};
  std::printf("matmul N%d C%d OC%d\n", N, C, OC);
  expect_close("out", out, f(in), 1e-5, 1e-5);

  const vecf dout = random_floats(N * OC, 4);
  vecf dinp(N * C), dw(OC * C, 0.0f), db(OC, 0.0f);
  k->matmul_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), N, C, OC);
  expect_close("dinp", dinp, numeric_gradient(f, in, 0, to_double(dout)), 1e-4, 1e-4);
  expect_close("dweight", dw, numeric_gradient(f, in, 1, to_double(dout)), 1e-4, 1e-4);
  expect_close("dbias", db, numeric_gradient(f, in, 2, to_double(dout)), 1e-4, 1e-4);

  // parameter gradients accumulate: a second backward doubles them
  vecf dw2 = dw, db2 = db;
  k->matmul_backward(nullptr, dw2.data(), db2.data(), dout.data(), inp.data(), w.data(), N, C, OC);
  for (size_t i = 0; i < dw.size(); i++) EXPECT_FLOAT_EQ(dw2[i], 2 * dw[i]);
  for (size_t i = 0; i < db.size(); i++) EXPECT_FLOAT_EQ(db2[i], 2 * db[i]);
}

TEST_F(op_gradients, layernorm_forward_and_backward_match_float64) {
  const int N = 5, C = 12;
  const vecf x = random_floats(N * C, 5, 2.0f), w = random_floats(C, 6), b = random_floats(C, 7);
  vecf out(N * C), mean(N), rstd(N);
  k->layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
  const reference_fn f = [&](const std::vector<vecd>& in) {
    return ref_layernorm(in[0], in[1], in[2], N, C);
  };
  const std::vector<vecd> in{to_double(x), to_double(w), to_double(b)};
  std::printf("layernorm N%d C%d\n", N, C);
  expect_close("out", out, f(in), 1e-5, 1e-5);

  const vecf dout = random_floats(N * C, 8);
  vecf dx(N * C, 0.0f), dw(C, 0.0f), db(C, 0.0f);
  k->layernorm_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(),
                        mean.data(), rstd.data(), N, C);
  expect_close("dinp", dx, numeric_gradient(f, in, 0, to_double(dout)), 1e-4, 1e-3);
  expect_close("dweight", dw, numeric_gradient(f, in, 1, to_double(dout)), 1e-4, 1e-4);
  expect_close("dbias", db, numeric_gradient(f, in, 2, to_double(dout)), 1e-4, 1e-4);
}

TEST_F(op_gradients, causal_attention_forward_and_backward_match_float64) {
  const int B = 2, T = 7, C = 8, NH = 2;
  const vecf qkv = random_floats(B * T * 3 * C, 9);
  vecf out(B * T * C), att(B * NH * T * T);
  k->attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH);
  const reference_fn f = [&](const std::vector<vecd>& in) {
    return ref_attention(in[0], B, T, C, NH);
  };
  const std::vector<vecd> in{to_double(qkv)};
  std::printf("attention B%d T%d C%d NH%d\n", B, T, C, NH);
  expect_close("out", out, f(in), 1e-5, 1e-4);
  // causality: probabilities above the diagonal are exactly zero, rows sum to one
  for (int bh = 0; bh < B * NH; bh++)
    for (int t = 0; t < T; t++) {
      double row = 0;
      for (int t2 = 0; t2 < T; t2++) {
        const float p = att[(bh * T + t) * T + t2];
        if (t2 > t) {
          EXPECT_EQ(p, 0.0f);
        }
        row += p;
      }
      EXPECT_NEAR(row, 1.0, 1e-5);
    }

  const vecf dout = random_floats(B * T * C, 10);
  vecf dqkv(qkv.size(), 123.0f);  // overwritten, not accumulated
  k->attention_backward(dqkv.data(), dout.data(), qkv.data(), att.data(), B, T, C, NH);
  expect_close("dqkv", dqkv, numeric_gradient(f, in, 0, to_double(dout)), 1e-4, 1e-3);
}

TEST_F(op_gradients, gelu_forward_and_backward_match_float64) {
  const int n = 301;
  vecf x = random_floats(n, 11, 3.0f);
  x[0] = 0.0f;
  x[1] = 12.0f;
  x[2] = -12.0f;
  vecf out(n);
  k->gelu_forward(out.data(), x.data(), n);
  const reference_fn f = [&](const std::vector<vecd>& in) {
    vecd o(in[0].size());
    for (size_t i = 0; i < o.size(); i++) o[i] = ref_gelu(in[0][i]);
    return o;
  };
  const std::vector<vecd> in{to_double(x)};
  std::printf("gelu n%d\n", n);
  expect_close("out", out, f(in), 1e-6, 1e-5);
  const vecf dout = random_floats(n, 12);
  vecf dx(n);
  k->gelu_backward(dx.data(), x.data(), dout.data(), n);
  expect_close("dinp", dx, numeric_gradient(f, in, 0, to_double(dout)), 1e-5, 1e-4);
}

TEST_F(op_gradients, encoder_backward_scatters_repeated_tokens) {
  const int B = 2, T = 5, C = 6, V = 4, maxT = 8;
  const std::vector<int32_t> tokens{0, 1, 1, 3, 0, 2, 2, 2, 1, 0};  // repeats on purpose
  const vecf wte = random_floats(V * C, 13), wpe = random_floats(maxT * C, 14);
  vecf out(B * T * C);
  k->encoder_forward(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
  const reference_fn f = [&](const std::vector<vecd>& in) {
    vecd o(static_cast<size_t>(B * T * C));
    for (int n = 0; n < B * T; n++)
      for (int c = 0; c < C; c++) o[n * C + c] = in[0][tokens[n] * C + c] + in[1][(n % T) * C + c];
    return o;
  };
  const std::vector<vecd> in{to_double(wte), to_double(wpe)};
  std::printf("encoder B%d T%d C%d\n", B, T, C);
  expect_close("out", out, f(in), 1e-6, 1e-6);
  const vecf dout = random_floats(B * T * C, 15);
  vecf dwte(V * C, 0.0f), dwpe(maxT * C, 0.0f);
  k->encoder_backward(dwte.data(), dwpe.data(), dout.data(), tokens.data(), B, T, C);
  expect_close("dwte", dwte, numeric_gradient(f, in, 0, to_double(dout)), 1e-5, 1e-5);
  expect_close("dwpe", dwpe, numeric_gradient(f, in, 1, to_double(dout)), 1e-5, 1e-5);
}

TEST_F(op_gradients, softmax_crossentropy_ignores_padded_vocabulary) {
  const int N = 4, V = 10, Vp = 16;
  const std::vector<int32_t> targets{0, 9, 3, 3};
  vecf logits = random_floats(N * Vp, 16, 2.0f);
  for (int n = 0; n < N; n++)
    for (int i = V; i < Vp; i++) logits[n * Vp + i] = 50.0f;  // padded columns must not count
  const vecf saved = logits;
  vecf losses(N);
  k->softmax_crossentropy_forward(losses.data(), logits.data(), targets.data(), N, V, Vp);
  // reference: the loss of each row as a function of its logits
  const reference_fn f = [&](const std::vector<vecd>& in) {
    vecd o(N);
    for (int n = 0; n < N; n++) {
      double mx = -1e300, z = 0;
      for (int i = 0; i < V; i++) mx = std::max(mx, in[0][n * Vp + i]);
      for (int i = 0; i < V; i++) z += std::exp(in[0][n * Vp + i] - mx);
      o[n] = -(in[0][n * Vp + targets[n]] - mx - std::log(z));
    }
    return o;
  };
  const std::vector<vecd> in{to_double(saved)};
  std::printf("softmax_crossentropy N%d V%d Vp%d\n", N, V, Vp);
  expect_close("losses", losses, f(in), 1e-5, 1e-5);
  for (int n = 0; n < N; n++)
    for (int i = V; i < Vp; i++) EXPECT_EQ(logits[n * Vp + i], 0.0f);
  const float dloss = 0.25f;
  k->softmax_crossentropy_backward(logits.data(), targets.data(), dloss, N, V, Vp);
  expect_close("dlogits", logits, numeric_gradient(f, in, 0, vecd(N, dloss)), 1e-5, 1e-4);
}

// Restores the process-wide OpenMP thread count (which a backend sets when it is made) at
// the end of a scope, so a test that makes backends of other sizes leaves none behind.
class omp_threads_restored {
public:
  omp_threads_restored() : threads_(omp_get_max_threads()) {}
  ~omp_threads_restored() { omp_set_num_threads(threads_); }
  omp_threads_restored(const omp_threads_restored&) = delete;
  omp_threads_restored& operator=(const omp_threads_restored&) = delete;

private:
  int threads_;
};

TEST(sum_squares, is_independent_of_thread_count) {
  const omp_threads_restored restore;
  const vecf x = random_floats(100'003, 17);
  double want = 0;
  for (float v : x) want += static_cast<double>(v) * v;
  auto one_thread = lz::kernels::make_cpu_backend(1);
  ASSERT_EQ(omp_get_max_threads(), 1);
  const double one = one_thread->sum_squares(x.data(), static_cast<int64_t>(x.size()));
  auto two_threads = lz::kernels::make_cpu_backend(2);
  ASSERT_EQ(omp_get_max_threads(), 2);
  const double two = two_threads->sum_squares(x.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(one, two);
  EXPECT_NEAR(two, want, 1e-9 * want);
}

}  // namespace
