/*
 * A stand-in for NVIDIA's libnvidia-ml.so.1: the handful of NVML calls the
 * agent makes, answering with fixed values for two GPUs, so the NVML path
 * runs in every `cargo test` on machines without an NVIDIA GPU.
 *
 * Built by the tests: cc -shared -fPIC -o libnvidia-ml-standin.so nvml_standin.c
 * Loaded by the agent through SOCKAGENT_NVML_LIB=/path/to/that.so.
 *
 * Signatures, struct layouts and return codes follow nvml.h. The values:
 *   GPU 0  "NVIDIA H200"            as captured on the H200 VM: 143771 MiB total,
 *          idle, 37 C; v1 memory call says 615 MiB used (driver-reserved),
 *          v2 says 0 used + 615 MiB reserved, as nvidia-smi shows.
 *   GPU 1  "NVIDIA A100-SXM4-80GB"  80 GiB, 4 GiB used + 512 MiB reserved,
 *          73 % busy, 61 C.
 *
 * Knobs (environment of the process that loads it):
 *   NVML_STANDIN_LOST_FILE=PATH  while PATH exists, GPU 1 answers every call
 *                                with NVML_ERROR_GPU_IS_LOST (fallen off the bus)
 *   NVML_STANDIN_NO_V2=1         nvmlDeviceGetMemoryInfo_v2 answers NOT_SUPPORTED
 *                                (an old driver): the agent must use v1
 *   NVML_STANDIN_INIT_FAIL=1     nvmlInit_v2 answers DRIVER_NOT_LOADED
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25

typedef struct nvmlDevice_st {
    unsigned int index;
    const char *name;
    unsigned long long total, used, reserved;
    unsigned int util, temp;
} *nvmlDevice_t;

typedef struct {
    unsigned int gpu, memory;
} nvmlUtilization_t;

typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

#define nvmlMemory_v2 ((unsigned int)(sizeof(nvmlMemory_v2_t) | (2 << 24U)))
#define NVML_TEMPERATURE_GPU 0

#define MiB (1024ULL * 1024ULL)
static struct nvmlDevice_st devices[2] = {
    {0, "NVIDIA H200", 143771 * MiB, 0, 615 * MiB, 0, 37},
    {1, "NVIDIA A100-SXM4-80GB", 81920 * MiB, 4096 * MiB, 512 * MiB, 73, 61},
};

static int initialised;

static nvmlReturn_t check(nvmlDevice_t d) {
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    if (d != &devices[0] && d != &devices[1])
        return NVML_ERROR_INVALID_ARGUMENT;
    const char *lost = getenv("NVML_STANDIN_LOST_FILE");
    if (d->index == 1 && lost && *lost && access(lost, F_OK) == 0)
        return NVML_ERROR_GPU_IS_LOST;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) {
    const char *fail = getenv("NVML_STANDIN_INIT_FAIL");
    if (fail && strcmp(fail, "1") == 0)
        return NVML_ERROR_DRIVER_NOT_LOADED;
    initialised++;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    return nvmlInit_v2();
}

nvmlReturn_t nvmlShutdown(void) {
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    initialised--;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    const char *v = "550.54.15-standin";
    if (!version || length < strlen(v) + 1)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(version, v, strlen(v) + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = 2;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    if (index > 1 || !device)
        return NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t r = check(&devices[index]);
    if (r != NVML_SUCCESS)
        return r;
    *device = &devices[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int length) {
    nvmlReturn_t r = check(d);
    if (r != NVML_SUCCESS)
        return r;
    if (!name || length < strlen(d->name) + 1)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(name, d->name, strlen(d->name) + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    nvmlReturn_t r = check(d);
    if (r != NVML_SUCCESS)
        return r;
    if (!u)
        return NVML_ERROR_INVALID_ARGUMENT;
    u->gpu = d->util;
    u->memory = d->util / 2;
    return NVML_SUCCESS;
}

/* v1: reserved memory counts as used */
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    nvmlReturn_t r = check(d);
    if (r != NVML_SUCCESS)
        return r;
    if (!m)
        return NVML_ERROR_INVALID_ARGUMENT;
    m->total = d->total;
    m->used = d->used + d->reserved;
    m->free = d->total - m->used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    nvmlReturn_t r = check(d);
    if (r != NVML_SUCCESS)
        return r;
    const char *no_v2 = getenv("NVML_STANDIN_NO_V2");
    if (no_v2 && strcmp(no_v2, "1") == 0)
        return NVML_ERROR_NOT_SUPPORTED;
    if (!m)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (m->version != nvmlMemory_v2)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    m->total = d->total;
    m->reserved = d->reserved;
    m->used = d->used;
    m->free = d->total - d->reserved - d->used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *temp) {
    nvmlReturn_t r = check(d);
    if (r != NVML_SUCCESS)
        return r;
    if (sensor != NVML_TEMPERATURE_GPU || !temp)
        return NVML_ERROR_INVALID_ARGUMENT;
    *temp = d->temp;
    return NVML_SUCCESS;
}
