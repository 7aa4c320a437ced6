// http_download_test.cpp: the HTTP download decisions of protocol §8.8 (url check, failure
// actions, esp_https_ota's resume offset, resume point bookkeeping) and the receiver handing a
// URL MANIFEST to its HttpDownloader and turning the result into a STATUS or a new REQUEST.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "fakes.h"
#include "ota_core/http_download.h"

using namespace ota_core;
using fakes::Harness;

namespace {

const char* kUrl = "http://10.0.0.2:8080/img/ab?d=dev-1&e=1767225600&t=q83vEjRWeJq83vEjRWeJq83vEjRWe";

UrlProblem check(const std::string& url) {
  return checkDownloadUrl(Bytes{reinterpret_cast<const uint8_t*>(url.data()), url.size()});
}

TEST(HttpDownload, AcceptsAbsoluteHttpAndHttpsUrlsWithAHost) {
  EXPECT_EQ(check(kUrl), UrlProblem::NONE);
  EXPECT_EQ(check("https://ota.example.com/img/x"), UrlProblem::NONE);
  EXPECT_EQ(check("http://h"), UrlProblem::NONE);
}

TEST(HttpDownload, RefusesUrlsItCannotFetchNamingWhy) {
  EXPECT_EQ(check(""), UrlProblem::EMPTY);
  EXPECT_EQ(check("http://" + std::string(kMaxUrlBytes - 6, 'a')), UrlProblem::TOO_LONG);
  EXPECT_EQ(check("http://" + std::string(kMaxUrlBytes - 7, 'a')), UrlProblem::NONE);
  EXPECT_EQ(check("ftp://h/x"), UrlProblem::BAD_SCHEME);
  EXPECT_EQ(check("HTTP://h/x"), UrlProblem::BAD_SCHEME);
  EXPECT_EQ(check("/img/x"), UrlProblem::BAD_SCHEME);
  EXPECT_EQ(check("http://"), UrlProblem::NO_HOST);
  EXPECT_EQ(check("https:///img"), UrlProblem::NO_HOST);
  EXPECT_EQ(check("http://h/a b"), UrlProblem::BAD_CHARACTER);
  EXPECT_EQ(check("http://h/\r\nX-Evil: 1"), UrlProblem::BAD_CHARACTER);
  EXPECT_EQ(check("http://h/\xc3\xa9"), UrlProblem::BAD_CHARACTER);
  EXPECT_STREQ(toString(UrlProblem::BAD_SCHEME), "url is not http:// or https://");
}

TEST(HttpDownload, RetriesCutsWithRangeAsksAgainWhenRefusedAndGivesUpAfterMaxAttempts) {
  EXPECT_EQ(onHttpFailure(0, 1), HttpFailureAction::RETRY_WITH_RANGE);
  EXPECT_EQ(onHttpFailure(503, 1), HttpFailureAction::RETRY_WITH_RANGE);
  EXPECT_EQ(onHttpFailure(416, 2), HttpFailureAction::RETRY_WITH_RANGE);
  EXPECT_EQ(onHttpFailure(403, 1), HttpFailureAction::ASK_AGAIN);
  EXPECT_EQ(onHttpFailure(404, 2), HttpFailureAction::ASK_AGAIN);
  EXPECT_EQ(onHttpFailure(410, 1), HttpFailureAction::ASK_AGAIN);
  EXPECT_EQ(onHttpFailure(0, kMaxHttpAttempts), HttpFailureAction::GIVE_UP);
  EXPECT_EQ(onHttpFailure(403, kMaxHttpAttempts), HttpFailureAction::GIVE_UP);
}

TEST(HttpDownload, ResumesWhereEspHttpsOtaCan) {
  EXPECT_EQ(idfResumeOffset(0, false), 0u);
  EXPECT_EQ(idfResumeOffset(kIdfMinResumeBytes - 1, false), 0u);  // IDF starts again from 0
  EXPECT_EQ(idfResumeOffset(kIdfMinResumeBytes, false), kIdfMinResumeBytes);
  EXPECT_EQ(idfResumeOffset(8195, false), 8195u);
  EXPECT_EQ(idfResumeOffset(8195, true), 8192u);  // flash encryption: multiples of 16
}

TEST(HttpDownload, SavesTheResumePointOnASectorEvery64KiBAndAtTheEnd) {
  fakes::MemStore store;
  HttpJob job;
  job.size = 300 * 1024;
  job.from = 8192;
  job.sha256[0] = 0xAB;
  HttpResumeKeeper keeper(store, job, "blink", "1.1.0");
  keeper.written(8192 + 1000);
  keeper.written(8192 + kHttpResumeSaveBytes - 1);
  EXPECT_FALSE(store.point.has_value());
  keeper.written(8192 + kHttpResumeSaveBytes + 100);
  ASSERT_TRUE(store.point.has_value());
  EXPECT_EQ(store.point->offset, 8192 + kHttpResumeSaveBytes);
  EXPECT_EQ(store.point->sha256[0], 0xAB);
  EXPECT_STREQ(store.point->product, "blink");
  keeper.written(200 * 1024 + 7);
  EXPECT_EQ(store.point->offset, 200u * 1024);
  keeper.written(job.size);
  EXPECT_EQ(store.point->offset, job.size - job.size % kFlashSectorBytes);
}

/// A downloader that records its job, reports progress and returns a set result; a VERIFIED
/// one has finished the slot, as esp_https_ota_finish() finishes the partition the sink writes.
class FakeDownloader : public HttpDownloader {
 public:
  fakes::FakeFlash* slot = nullptr;
  HttpResult result;
  std::vector<HttpJob> jobs;
  uint32_t progressTo = 0;
  HttpResult download(const HttpJob& job, HttpResumeKeeper& keeper) override {
    jobs.push_back(job);
    if (progressTo != 0) keeper.written(progressTo);
    if (slot != nullptr) slot->finished = result.status == StatusCode::VERIFIED;
    return result;
  }
};

std::function<void(Manifest&)> withUrl(const char* url) {
  return [url](Manifest& m) {
    m.hasUrl = true;
    m.url = bytesOf(url);
  };
}

TEST(HttpDownload, AReceiverAsksForHttpAndHandsAUrlManifestToItsDownloader) {
  Harness h(200 * 1024);
  FakeDownloader dl;
  dl.result.status = StatusCode::VERIFIED;
  dl.result.bytesWritten = 200 * 1024;
  dl.slot = &h.flash;
  h.cfg.httpDownloader = &dl;
  h.cfg.askHttp = true;
  Receiver& rx = h.make();
  rx.start();
  ASSERT_EQ(h.requests().size(), 1u);
  EXPECT_TRUE(h.requests()[0].wantsHttp);
  EXPECT_FALSE(rx.runPendingHttpDownload());  // nothing asked yet
  h.sendManifest(0, withUrl(kUrl));
  ASSERT_EQ(rx.state(), State::RECEIVING);
  EXPECT_EQ(h.flash.writeCalls, 0u);
  EXPECT_TRUE(rx.runPendingHttpDownload());
  ASSERT_EQ(dl.jobs.size(), 1u);
  EXPECT_STREQ(dl.jobs[0].url, kUrl);
  EXPECT_EQ(dl.jobs[0].from, 0u);
  EXPECT_EQ(dl.jobs[0].size, 200u * 1024);
  EXPECT_EQ(std::memcmp(dl.jobs[0].sha256, h.sha, 32), 0);
  EXPECT_EQ(rx.state(), State::VERIFIED);
  ASSERT_EQ(h.statuses().size(), 1u);
  EXPECT_EQ(h.statuses()[0], StatusCode::VERIFIED);
  EXPECT_TRUE(h.acks().empty());  // no ACK in HTTP mode
  EXPECT_EQ(h.flash.activations, 1u);  // the sink switches the boot slot and records it
  EXPECT_FALSE(h.store.point.has_value());
  EXPECT_FALSE(rx.runPendingHttpDownload());  // once only
}

TEST(HttpDownload, ARefusedUrlSendsARequestWithTheSavedResumePoint) {
  Harness h(300 * 1024);
  FakeDownloader dl;
  dl.result.askAgain = true;
  dl.progressTo = 150 * 1024 + 5;
  h.cfg.httpDownloader = &dl;
  Receiver& rx = h.make();
  rx.start();
  EXPECT_FALSE(h.requests()[0].wantsHttp);  // it follows URLs, but did not ask
  h.sendManifest(0, withUrl(kUrl));
  EXPECT_TRUE(rx.runPendingHttpDownload());
  EXPECT_EQ(rx.state(), State::REQUESTED);
  ASSERT_EQ(h.requests().size(), 2u);
  EXPECT_TRUE(h.requests()[1].hasResume);
  EXPECT_EQ(h.requests()[1].resumeOffset, 37u * kFlashSectorBytes);  // the sector below 150 KiB
  EXPECT_TRUE(h.statuses().empty());
  // The fresh URL continues from the offset granted.
  h.sendManifest(37 * kFlashSectorBytes, withUrl(kUrl));
  ASSERT_EQ(rx.state(), State::RECEIVING);
  dl.result = HttpResult{};
  dl.result.status = StatusCode::HASH_MISMATCH;
  dl.result.detail = "sha256 differs";
  EXPECT_TRUE(rx.runPendingHttpDownload());
  EXPECT_EQ(dl.jobs.back().from, 37u * kFlashSectorBytes);
  EXPECT_EQ(rx.state(), State::FAILED);
  ASSERT_EQ(h.statuses().size(), 1u);
  EXPECT_EQ(h.statuses()[0], StatusCode::HASH_MISMATCH);
}

TEST(HttpDownload, AUrlManifestIsRefusedWithoutADownloaderOrWithAUrlItCannotFetch) {
  {
    Harness h;
    Receiver& rx = h.make();
    rx.start();
    h.sendManifest(0, withUrl(kUrl));
    EXPECT_EQ(rx.state(), State::FAILED);
    ASSERT_EQ(h.statuses().size(), 1u);
    EXPECT_EQ(h.statuses()[0], StatusCode::ABORTED);
    EXPECT_STREQ(rx.outcome().detail, "this device cannot download over HTTP");
  }
  {
    Harness h;
    FakeDownloader dl;
    h.cfg.httpDownloader = &dl;
    Receiver& rx = h.make();
    rx.start();
    h.sendManifest(0, withUrl("file:///etc/passwd"));
    EXPECT_EQ(rx.state(), State::FAILED);
    EXPECT_STREQ(rx.outcome().detail, "url is not http:// or https://");
    EXPECT_FALSE(rx.runPendingHttpDownload());
    EXPECT_TRUE(dl.jobs.empty());
  }
  {
    Harness h;
    FakeDownloader dl;
    h.cfg.httpDownloader = &dl;
    Receiver& rx = h.make();
    rx.start();
    h.sendManifest(4096, withUrl(kUrl));  // a start offset it holds no bytes for
    EXPECT_EQ(rx.state(), State::FAILED);
    EXPECT_STREQ(rx.outcome().detail, "start offset beyond the bytes this device holds");
  }
}

}  // namespace

namespace {

TEST(HttpDownload, UrlsRefusedAgainAndAgainWithoutProgressEndTheAttemptWithAborted) {
  Harness h(64 * 1024);
  FakeDownloader dl;
  dl.result.askAgain = true;
  h.cfg.httpDownloader = &dl;
  Receiver& rx = h.make();
  rx.start();
  for (uint32_t i = 1; i < kMaxHttpAttempts; ++i) {
    h.sendManifest(0, withUrl(kUrl));
    EXPECT_TRUE(rx.runPendingHttpDownload());
    ASSERT_EQ(rx.state(), State::REQUESTED) << "refusal " << i;
  }
  h.sendManifest(0, withUrl(kUrl));
  EXPECT_TRUE(rx.runPendingHttpDownload());
  EXPECT_EQ(rx.state(), State::FAILED);
  EXPECT_STREQ(rx.outcome().detail, "the server refused every download URL");
  ASSERT_EQ(h.statuses().size(), 1u);
  EXPECT_EQ(h.statuses()[0], StatusCode::ABORTED);
  EXPECT_EQ(h.requests().size(), kMaxHttpAttempts);
}

}  // namespace
