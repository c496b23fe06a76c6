#include "experiments/data/unicode.h"

namespace htga::data::unicode {

namespace {

constexpr char32_t kReplacement = 0xFFFD;

// NFD base letters of U+00C0..U+00FF and U+0100..U+017F; '.' where the letter has no canonical
// decomposition (Æ, Ø, Đ, Ł, ß, ...) and so keeps its identity.
constexpr char kLatin1Base[] = "AAAAAA.CEEEEIIII.NOOOOO..UUUUY..aaaaaa.ceeeeiiii.nooooo..uuuuy.y";
constexpr char kLatinExtABase[] =
    "AaAaAaCcCcCcCcDd..EeEeEeEeEeGgGgGgGgHh..IiIiIiIiI...JjKk.LlLlLl....NnNnNn...OoOoOo..RrRrRrSsSsSsSsTtTt..UuUuUuUu"
    "UuUuWwYyYZzZzZz.";
static_assert(sizeof(kLatin1Base) == 64 + 1, "one base letter per code point of U+00C0..U+00FF");
static_assert(sizeof(kLatinExtABase) == 128 + 1, "one base letter per code point of U+0100..U+017F");

}  // namespace

std::vector<CodePoint> decode(const std::string& text) {
  std::vector<CodePoint> out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    size_t len = 0;
    char32_t cp = 0, min = 0;
    if (c < 0x80) {
      out.push_back({c, i, i + 1});
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    }
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (ok) {
      out.push_back({cp, i, i + len});
      i += len;
    } else {
      out.push_back({kReplacement, i, i + 1});
      ++i;
    }
  }
  return out;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

size_t length(const std::string& text) { return decode(text).size(); }

char32_t to_lower(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 32;
  if (cp >= 0x100 && cp <= 0x17F) {
    if (cp == 0x130) return 'i';  // Python gives "i" + U+0307; the dot is an accent either way
    if (cp == 0x178) return 0xFF;
    const bool odd_upper = (cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E);
    if (cp == 0x131 || cp == 0x138 || cp == 0x149 || cp == 0x17F) return cp;
    if (odd_upper) return (cp % 2 == 1) ? cp + 1 : cp;
    return (cp % 2 == 0) ? cp + 1 : cp;
  }
  if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) return cp + 32;  // Greek capitals
  if (cp == 0x386) return 0x3AC;                                  // Greek capitals with tonos
  if (cp >= 0x388 && cp <= 0x38A) return cp + 37;
  if (cp == 0x38C) return 0x3CC;
  if (cp == 0x38E || cp == 0x38F) return cp + 63;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 32;  // Cyrillic А..Я
  if (cp >= 0x400 && cp <= 0x40F) return cp + 80;  // Cyrillic Ѐ..Џ
  return cp;
}

char32_t strip_accent(char32_t cp) {
  if (cp >= 0x300 && cp <= 0x36F) return 0;
  if (cp >= 0xC0 && cp <= 0xFF) {
    const char b = kLatin1Base[cp - 0xC0];
    return b == '.' ? cp : static_cast<char32_t>(b);
  }
  if (cp >= 0x100 && cp <= 0x17F) {
    const char b = kLatinExtABase[cp - 0x100];
    return b == '.' ? cp : static_cast<char32_t>(b);
  }
  return cp;
}

bool is_whitespace(char32_t cp) {
  if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') return true;
  return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool is_control(char32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) return true;  // Cc
  return cp == 0xAD || (cp >= 0x600 && cp <= 0x605) || cp == 0x61C || cp == 0x6DD || cp == 0x70F || cp == 0x180E ||
         (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2064) ||
         (cp >= 0x2066 && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB);  // Cf
}

bool is_punctuation(char32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
    return true;
  switch (cp) {
    case 0xA1:
    case 0xA7:
    case 0xAB:
    case 0xB6:
    case 0xB7:
    case 0xBB:
    case 0xBF:  // ¡ § « ¶ · » ¿
    case 0x37E:
    case 0x387:
    case 0x589:
    case 0x58A:
    case 0x5BE:
    case 0x5C0:
    case 0x5C3:
    case 0x5C6:
    case 0x5F3:
    case 0x5F4:
    case 0x60C:
    case 0x60D:
    case 0x61B:
    case 0x61E:
    case 0x61F:
    case 0x6D4:
      return true;
    default:
      break;
  }
  return (cp >= 0x55A && cp <= 0x55F) || (cp >= 0x66A && cp <= 0x66D) || (cp >= 0x2010 && cp <= 0x2027) ||
         (cp >= 0x2030 && cp <= 0x2043) || (cp >= 0x2045 && cp <= 0x2051) || (cp >= 0x2053 && cp <= 0x205E) ||
         (cp >= 0x2E00 && cp <= 0x2E4F) || (cp >= 0x3001 && cp <= 0x3003) || (cp >= 0x3008 && cp <= 0x3011) ||
         (cp >= 0x3014 && cp <= 0x301F) || (cp >= 0xFF01 && cp <= 0xFF03) || (cp >= 0xFF05 && cp <= 0xFF0A) ||
         (cp >= 0xFF0C && cp <= 0xFF0F) || cp == 0xFF1A || cp == 0xFF1B || cp == 0xFF1F || cp == 0xFF20 ||
         (cp >= 0xFF3B && cp <= 0xFF3D) || cp == 0xFF3F || cp == 0xFF5B || cp == 0xFF5D ||
         (cp >= 0xFF5F && cp <= 0xFF65);
}

bool is_python_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool is_word_char(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') || cp == '_';
  return !is_python_space(cp) && !is_control(cp) && !is_punctuation(cp);
}

std::string lower(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const auto& c : decode(text)) {
    if (c.cp < 0x80)
      out += static_cast<char>(to_lower(c.cp));
    else if (c.cp == kReplacement && c.end - c.begin == 1)
      out += text[c.begin];  // keep malformed bytes as they were
    else
      append(out, to_lower(c.cp));
  }
  return out;
}

}  // namespace htga::data::unicode
