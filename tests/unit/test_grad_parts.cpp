// The order in which backward completes gradients (model/grad_parts.h): head, layers from the
// last, embedding; a tied head belongs with the embedding; a name of no part is an error.
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/grad_parts.h"
#include "model/tensor_names.h"

TEST(GradParts, FollowBackwardOrder) {
  mf::ModelConfig c;
  c.num_layers = 3;
  EXPECT_EQ(mf::grad_part_of(c, mf::kFinalNormName), 0);
  EXPECT_EQ(mf::grad_part_of(c, mf::kLmHeadName), 0);
  EXPECT_EQ(mf::grad_part_of(c, mf::layer_names(2).attn('q')), 1);
  EXPECT_EQ(mf::grad_part_of(c, mf::layer_names(0).mlp(mf::kMlpDown)), 3);
  EXPECT_EQ(mf::grad_part_of(c, mf::kEmbedTokensName), 4);
  c.tie_word_embeddings = true;
  EXPECT_EQ(mf::grad_part_of(c, mf::kLmHeadName), 4);
  EXPECT_THROW(mf::grad_part_of(c, "model.layers.3.mlp.up_proj.weight"), mf::Error);
  EXPECT_THROW(mf::grad_part_of(c, "model.layers.x.mlp.up_proj.weight"), mf::Error);
  EXPECT_THROW(mf::grad_part_of(c, "something.else"), mf::Error);
}
