import torch, time, sys
from bundleflow.cats_io import load_cats_npz
from bundleflow.baselines import item_pricing, best_price_given_outside
from bundleflow.training import init_bundles
torch.set_num_threads(2)
name=sys.argv[1]; J=int(sys.argv[2])
v,_=load_cats_npz(f'../shared/cats/{name}_single.npz')
g=torch.Generator().manual_seed(0); perm=torch.randperm(len(v),generator=g)
tr=v.subset(perm[:3000]); te=v.subset(perm[4000:5000])
cap=tr.max_value()
ip=item_pricing(tr); p=ip.item_prices.double()
def outside(val): return val.demand(p)
B=init_bundles(tr,J,0)
def ev(val): return val.value(B)
def rev(val,prices):
    u0,pay0=outside(val); U=ev(val)-prices[None]
    bu,bi=U.max(1)
    take=bu>u0
    return torch.where(take,prices[bi],pay0).mean().item()
Etr=ev(tr); u0,pay0=outside(tr)
prices=torch.full((J,),cap,dtype=torch.float64)
print('start',rev(tr,prices),rev(te,prices))
for r in range(3):
    for j in range(J):
        U=Etr-prices[None]; U[:,j]=-1e18
        bu,bi=U.max(1); take=bu>u0
        util=torch.where(take,bu,u0); pay=torch.where(take,prices[bi],pay0)
        P,_=best_price_given_outside(Etr[:,j]-util,pay,cap); prices[j]=P
    print(r,rev(tr,prices),rev(te,prices))
