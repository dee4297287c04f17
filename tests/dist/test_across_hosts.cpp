// Ranks on two "hosts" that talk over real TCP: two network namespaces joined by a veth pair,
// with addresses the test gives them (10.254.7.1 and .2, which exist only inside those
// namespaces), each with its own host name (a UTS namespace). mpirun runs in the first; OpenMPI
// starts the rank of the second host through a launch agent that does `ip netns exec` instead of
// ssh, and TCP is the only transport (btl tcp,self; out-of-band traffic on the veth too). The
// dense and MoE recipes give the single-process loss curve and weights within 1e-5, the layout
// names the two hosts, and the bytes went over the veth. Needs root and iproute2; skips with a
// message otherwise.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>

#include "dist_run.h"

namespace {
using namespace mf::test;

class AcrossHosts : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
    if (run_shell(quote(mpirun()) + " --version").rc != 0) GTEST_SKIP() << "no mpirun (" << mpirun() << ")";
    if (::geteuid() != 0) GTEST_SKIP() << "network namespaces need root";
    if (run_shell("command -v ip && command -v unshare").rc != 0) GTEST_SKIP() << "no ip (iproute2) or unshare";
    const std::string id = std::to_string(::getpid() % 100000);
    ns_a_ = "mfa" + id;
    ns_b_ = "mfb" + id;
    veth_a_ = "mfva" + id;
    veth_b_ = "mfvb" + id;
    const std::string setup =
        "ip netns add " + ns_a_ + " && ip netns add " + ns_b_ + " && ip link add " + veth_a_ +
        " type veth peer name " + veth_b_ + " && ip link set " + veth_a_ + " netns " + ns_a_ + " && ip link set " +
        veth_b_ + " netns " + ns_b_ + " && ip -n " + ns_a_ + " addr add " + kHostA + "/24 dev " + veth_a_ +
        " && ip -n " + ns_b_ + " addr add " + kHostB + "/24 dev " + veth_b_ + " && ip -n " + ns_a_ + " link set " +
        veth_a_ + " up && ip -n " + ns_b_ + " link set " + veth_b_ + " up && ip -n " + ns_a_ +
        " link set lo up && ip -n " + ns_b_ + " link set lo up";
    const RunResult made = run_shell(setup);
    if (made.rc != 0) {
      remove_namespaces();
      GTEST_SKIP() << "cannot make network namespaces here: " << made.err;
    }
    made_ = true;
    dir_ = fs::temp_directory_path() / ("moeforge_hosts_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write_corpus(dir_);
    // OpenMPI's rsh launcher runs "AGENT [options] HOST COMMAND...": this agent runs COMMAND in
    // HOST's namespaces instead of over ssh.
    std::ofstream(dir_ / "agent.sh") << "#!/bin/sh\n"
                                        "while [ $# -gt 0 ]; do case \"$1\" in -*) shift ;; *) break ;; esac; done\n"
                                        "host=$1; shift\n"
                                        "case \"$host\" in\n"
                                     << "  " << kHostA << ") ns=" << ns_a_ << "; name=mf-host-a ;;\n"
                                     << "  " << kHostB << ") ns=" << ns_b_ << "; name=mf-host-b ;;\n"
                                     << "  *) echo \"agent: unknown host $host\" >&2; exit 1 ;;\n"
                                        "esac\n"
                                        "exec ip netns exec \"$ns\" unshare --uts sh -c \"hostname $name; $*\"\n";
    fs::permissions(dir_ / "agent.sh", fs::perms::owner_all);
    std::ofstream(dir_ / "hosts") << kHostA << " slots=1\n" << kHostB << " slots=1\n";
  }
  void TearDown() override {
    if (made_) remove_namespaces();
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void remove_namespaces() { run_shell("ip netns del " + ns_a_ + "; ip netns del " + ns_b_); }

  // The job on the two hosts, from host A, one rank each, TCP only.
  RunResult train_on_two_hosts(const std::vector<std::string>& args) {
    const std::string job = "hostname mf-host-a; exec " + quote(mpirun()) + " --allow-run-as-root --hostfile " +
                            quote((dir_ / "hosts").string()) + " -np 2 --mca plm_rsh_agent " +
                            quote((dir_ / "agent.sh").string()) + " --mca oob_tcp_if_include " + kSubnet +
                            " --mca btl_tcp_if_include " + kSubnet + " --mca btl tcp,self -x OMP_NUM_THREADS=1 " +
                            quote(binary()) + " train" + join_args(args);
    return run_shell("timeout 300 ip netns exec " + ns_a_ + " unshare --uts sh -c " + quote(job));
  }

  int64_t received_by_host_b() {
    const RunResult r = run_shell("ip netns exec " + ns_b_ + " cat /sys/class/net/" + veth_b_ + "/statistics/rx_bytes");
    return r.rc == 0 ? std::stoll(r.out) : -1;
  }

  void expect_same_training(const fs::path& recipe, const std::string& tag) {
    const fs::path one = dir_ / (tag + "_1"), two = dir_ / (tag + "_hosts");
    RunResult r = train(0, {recipe.string(), "--quiet", "-o", one.string()});
    ASSERT_EQ(r.rc, 0) << r.err;
    const int64_t before = received_by_host_b();
    r = train_on_two_hosts({recipe.string(), "-o", two.string()});
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_TRUE(has(r.err, "rank 0 on mf-host-a") && has(r.err, "rank 1 on mf-host-b")) << r.err;
    const int64_t received = received_by_host_b() - before;
    const double loss = max_relative_loss_difference(one, two, 20);
    const double weights = max_relative_weight_difference(one, two);
    std::printf("[measured] %s on two hosts over TCP vs 1 process: loss %.3g, weights %.3g; host B received %lld "
                "bytes\n", tag.c_str(), loss, weights, (long long)received);
    EXPECT_LE(loss, 1e-5);
    EXPECT_LE(weights, 1e-5);
    // 20 steps of gradient sums alone are 20 x 4 bytes x every trainable value.
    EXPECT_GT(received, 20 * 4 * 10000);
  }

  static constexpr const char* kHostA = "10.254.7.1";
  static constexpr const char* kHostB = "10.254.7.2";
  static constexpr const char* kSubnet = "10.254.7.0/24";
  std::string ns_a_, ns_b_, veth_a_, veth_b_;
  bool made_ = false;
  fs::path dir_;
};

TEST_F(AcrossHosts, DenseAndMoeTrainAsOneProcessDoes) {
  expect_same_training(dense_recipe(dir_), "dense");
  expect_same_training(moe_recipe(dir_), "moe");
}

}  // namespace
