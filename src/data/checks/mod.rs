//! `hmreg data check`: statistics and every problem of a dataset, each naming its file and line:
//! LaPa-layout folders ([`lapa`]) and COCO keypoint files ([`coco`]).

pub mod coco;
pub mod lapa;
