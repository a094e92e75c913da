// Run-time CPU feature probe (cpuid + xgetbv), used for kernel dispatch and `saferlhf info`.
#include <cpuid.h>
#include <cstring>

#include "status.h"

namespace {
bool os_saves_avx512_state() {
  unsigned int eax, edx;
  __asm__("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (eax & 0xE6) == 0xE6;  // XMM, YMM, opmask, ZMM_Hi256, Hi16_ZMM
}
bool os_saves_avx_state() {
  unsigned int eax, edx;
  __asm__("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (eax & 0x6) == 0x6;
}
}  // namespace

extern "C" SR_API sr_status sr_cpu_features(uint32_t* features, char* brand, int32_t brand_len) {
  if (features == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_cpu_features: features is null");
  uint32_t f = 0;
  unsigned int a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    bool osxsave = (c >> 27) & 1;
    if ((c >> 20) & 1) f |= SR_CPU_SSE42;
    bool avx_ok = osxsave && ((c >> 28) & 1) && os_saves_avx_state();
    if (avx_ok && ((c >> 12) & 1)) f |= SR_CPU_FMA;
    if (avx_ok && ((c >> 29) & 1)) f |= SR_CPU_F16C;
    if (avx_ok && __get_cpuid_count(7, 0, &a, &b, &c, &d)) {
      if ((b >> 5) & 1) f |= SR_CPU_AVX2;
      if (os_saves_avx512_state()) {
        if ((b >> 16) & 1) f |= SR_CPU_AVX512F;
        if ((b >> 30) & 1) f |= SR_CPU_AVX512BW;
        if ((b >> 31) & 1) f |= SR_CPU_AVX512VL;
        if ((c >> 11) & 1) f |= SR_CPU_AVX512VNNI;
        if ((c >> 1) & 1) f |= SR_CPU_AVX512VBMI;
        if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1)) f |= SR_CPU_AVX512BF16;
      }
      if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1)) f |= SR_CPU_AVXVNNI;
    }
  }
  *features = f;
  if (brand != nullptr && brand_len > 0) {
    char text[49] = {0};
    unsigned int regs[12] = {0};
    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
      for (unsigned int i = 0; i < 3; ++i) __get_cpuid(0x80000002 + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
      std::memcpy(text, regs, 48);
    }
    const char* start = text;
    while (*start == ' ') ++start;
    std::strncpy(brand, start, static_cast<size_t>(brand_len - 1));
    brand[brand_len - 1] = '\0';
  }
  return SR_OK;
}
