/* Wine 8's bcryptprimitives.dll lacks ProcessPrng, which Rust's standard
 * library imports on Windows; without it no test binary starts. This DLL
 * exports ProcessPrng and fills the buffer with RtlGenRandom (advapi32's
 * SystemFunction036). Built with MinGW by ci/windows-tests.sh, for Wine only. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x7fffffff ? 0x7fffffff : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
